//! The suite's summary: a table of phases (what broke, what was sent, how the ingestor
//! answered meanwhile) and a table of checks (expected, found), in Markdown.

use std::time::Duration;

/// One expectation and what was found.
#[derive(Debug, Clone)]
pub struct Check {
    name: String,
    expected: String,
    found: String,
    passed: bool,
}

impl Check {
    pub fn new(name: &str, expected: String, found: String, passed: bool) -> Self {
        Self {
            name: name.to_owned(),
            expected,
            found,
            passed,
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    phases: Vec<[String; 6]>,
    checks: Vec<Check>,
    notes: Vec<String>,
}

impl Report {
    pub fn phase(
        &mut self,
        phase: &str,
        fault: &str,
        events: usize,
        refused: &str,
        recovery: &str,
        took: Duration,
    ) {
        self.phases.push([
            phase.to_owned(),
            fault.to_owned(),
            events.to_string(),
            refused.to_owned(),
            recovery.to_owned(),
            format!("{:.1} s", took.as_secs_f64()),
        ]);
    }

    pub fn check(&mut self, check: Check) {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        eprintln!("reliability: {mark} {}: {}", check.name, check.found);
        self.checks.push(check);
    }

    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn render(&self) -> String {
        let mut out = String::from(
            "| phase | fault | webhooks | answers other than 2xx (each retried) | fault note | took |\n\
             |---|---|---|---|---|---|\n",
        );
        for row in &self.phases {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out.push_str("\n| check | expected | found | |\n|---|---|---|---|\n");
        for c in &self.checks {
            let mark = if c.passed { "ok" } else { "**FAILED**" };
            out.push_str(&format!(
                "| {} | {} | {} | {mark} |\n",
                c.name, c.expected, c.found
            ));
        }
        out.push('\n');
        for note in &self.notes {
            out.push_str(&format!("- {note}\n"));
        }
        let verdict = if self.passed() {
            "every check passed"
        } else {
            "SOME CHECKS FAILED"
        };
        out.push_str(&format!("\nreliability: {verdict}\n"));
        out
    }
}
