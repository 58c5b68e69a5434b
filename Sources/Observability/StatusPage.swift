import Foundation
import SyncEngine

/// `GET /`: a small self-contained HTML page (no scripts, no external resources) with one
/// table per configured service and links to the machine-readable paths.
enum StatusPage {
    static func html(_ report: StatusReport, now: Date) -> String {
        var out = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>sudosos-sync status</title>
            <style>
            body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#1b1f24;background:#fff}
            h1{font-size:1.5em;margin-bottom:.2em}
            h2{font-size:1.15em;margin:1.6em 0 .4em}
            p.meta{color:#57606a;margin-top:0}
            table{border-collapse:collapse;width:100%}
            th,td{text-align:left;padding:.35em .7em;border-bottom:1px solid #d0d7de;vertical-align:top}
            th{width:13em;color:#57606a;font-weight:600}
            .badge{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600;font-size:.9em}
            .ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}
            .warn{background:#fff8c5;color:#7d4e00}.idle{background:#eaeef2;color:#24292f}
            .run{background:#ddf4ff;color:#0550ae}
            code{font-family:"DejaVu Sans Mono",monospace;font-size:.95em}
            footer{margin-top:2em;color:#57606a}
            </style></head><body>
            <h1>sudosos-sync</h1>

            """
        out += "<p class=\"meta\">version \(escape(report.version)) · up since "
        out += "\(timestamp(report.startedAt)) (\(age(report.startedAt, now: now))) · page rendered \(timestamp(now))</p>\n"
        if report.services.isEmpty {
            out += "<p>No services are configured.</p>\n"
        }
        for service in report.services {
            out += section(service, now: now)
        }
        out += """
            <footer>Machine-readable: <a href="/status">/status</a> (JSON) · <a href="/metrics">/metrics</a> \
            (Prometheus) · <a href="/healthz">/healthz</a> · a run starts with \
            <code>sudosos-sync trigger SERVICE</code> or <code>POST /trigger/SERVICE</code>.</footer>
            </body></html>

            """
        return out
    }

    private static func section(_ s: ServiceStatus, now: Date) -> String {
        let name = escape(s.name)
        var rows: [(String, String)] = []
        rows.append(("State", badge(s.enabled ? s.state : "disabled")))
        rows.append(("Schedule", "<code>\(escape(s.schedule))</code>"))
        if let last = s.lastRun {
            var text = "\(badge(last.outcome.rawValue)) \(age(last.finishedAt, now: now))"
            text += " (finished \(timestamp(last.finishedAt)), took \(duration(last.finishedAt.timeIntervalSince(last.startedAt))))"
            if last.dryRun { text += " · dry run" }
            rows.append(("Last outcome", text))
            let changes = last.changes.values.reduce(0, +)
            rows.append((
                "Last run counts",
                "\(last.entities.passed) passed, \(last.entities.failed) failed, \(last.entities.skipped) skipped; \(changes) changes"
            ))
            if let error = last.error, !error.isEmpty {
                rows.append(("Last error", escape(error)))
            }
        } else {
            rows.append(("Last outcome", "no run yet"))
        }
        rows.append(("Last success", s.lastSuccessAt.map { "\(age($0, now: now)) (\(timestamp($0)))" } ?? "none yet"))
        rows.append(("Next run", s.nextRunAt.map { "\(until($0, now: now)) (\(timestamp($0)))" } ?? "not scheduled"))
        rows.append(("Consecutive failures", s.consecutiveFailures > 0 ? "<span class=\"badge bad\">\(s.consecutiveFailures)</span>" : "0"))
        if s.backoffSeconds > 0 { rows.append(("Backoff", duration(s.backoffSeconds))) }
        rows.append((
            "Links",
            "<a href=\"/status\">status JSON</a> · <a href=\"/metrics\">metrics</a>"
        ))
        var out = "<h2 id=\"service-\(name)\">\(name)</h2>\n<table>\n"
        for (key, value) in rows { out += "<tr><th>\(key)</th><td>\(value)</td></tr>\n" }
        out += "</table>\n"
        return out
    }

    /// A coloured badge for a state or outcome.
    private static func badge(_ word: String) -> String {
        let style =
            switch word {
            case "success", "idle": "ok"
            case "running": "run"
            case "failure", "crash", "timeout", "refused": "bad"
            case "backoff", "waiting", "not_ready", "locked": "warn"
            default: "idle"
            }
        return "<span class=\"badge \(style)\">\(escape(word))</span>"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// "3m 12s ago".
    static func age(_ date: Date, now: Date) -> String {
        let seconds = now.timeIntervalSince(date)
        return seconds >= 0 ? "\(duration(seconds)) ago" : "in \(duration(-seconds))"
    }

    /// "in 4m 5s".
    static func until(_ date: Date, now: Date) -> String {
        let seconds = date.timeIntervalSince(now)
        return seconds >= 0 ? "in \(duration(seconds))" : "\(duration(-seconds)) overdue"
    }

    /// A short human duration: `850ms`, `42s`, `3m 12s`, `2h 5m`, `3d 4h`.
    static func duration(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        let total = Int(seconds.rounded())
        let (d, h, m, s) = (total / 86400, total % 86400 / 3600, total % 3600 / 60, total % 60)
        if d > 0 { return "\(d)d \(h)h" }
        if h > 0 { return "\(h)h \(m)m" }
        if m > 0 { return "\(m)m \(s)s" }
        return "\(s)s"
    }
}
