print("gewisdb-fake: not yet")
