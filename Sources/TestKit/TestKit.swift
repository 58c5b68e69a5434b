import SyncEngine
import SudoSOSStore
