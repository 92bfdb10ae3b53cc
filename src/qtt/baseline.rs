//! The conformance ratchet: the set of cases that pass, by name.
//!
//! A baseline file holds one case per line, `file.json :: case name` (with
//! ` - FORMAT` / ` - CONFIG` for a variant), sorted. A run fails the
//! ratchet when a case of the baseline does not pass (it failed, or was not
//! found at all); cases that pass and are not in the baseline are reported
//! as new passes, to be added by rewriting the file. A count would let a
//! new pass hide a regression; a set cannot.

use std::collections::BTreeSet;
use std::path::Path;

use super::{FileReport, Outcome};
use crate::error::{Error, Result};

/// A case's name in a baseline.
pub fn case_id(file: &str, case: &str) -> String {
    format!("{file} :: {case}")
}

/// Every case that ran (passed, failed, or was reported as needing a
/// registry or disabled).
pub fn run_cases(reports: &[FileReport]) -> BTreeSet<String> {
    reports
        .iter()
        .flat_map(|r| r.cases.iter().map(|c| case_id(&r.file, &c.name)))
        .collect()
}

/// The cases that passed.
pub fn passing(reports: &[FileReport]) -> BTreeSet<String> {
    reports
        .iter()
        .flat_map(|r| {
            r.cases
                .iter()
                .filter(|c| c.outcome == Outcome::Passed)
                .map(|c| case_id(&r.file, &c.name))
        })
        .collect()
}

/// Read a baseline file.
pub fn read(path: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::semantic(format!("cannot read the baseline {}: {e}", path.display()))
    })?;
    let names: BTreeSet<String> = text
        // Exactly as written: some case names end with a space.
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = names.iter().find(|n| !n.contains(" :: ")) {
        return Err(Error::semantic(format!(
            "{}: `{bad}` is not a case name (`file.json :: case`); \
             regenerate the baseline with --write-baseline",
            path.display()
        )));
    }
    Ok(names)
}

/// Write the passing cases of a run as the baseline.
pub fn write(path: &Path, reports: &[FileReport]) -> Result<usize> {
    let names = passing(reports);
    let mut text = String::new();
    for n in &names {
        text.push_str(n);
        text.push('\n');
    }
    std::fs::write(path, text)?;
    Ok(names.len())
}

/// How a run compares with a baseline.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ratchet {
    /// Baseline cases that ran and did not pass.
    pub regressed: Vec<String>,
    /// Baseline cases the run did not have at all.
    pub missing: Vec<String>,
    /// Passing cases not in the baseline.
    pub new: Vec<String>,
}

impl Ratchet {
    /// Compare a run with a baseline. With `partial` (a filtered run),
    /// baseline cases that did not run are not counted as missing.
    pub fn compare(baseline: &BTreeSet<String>, reports: &[FileReport], partial: bool) -> Self {
        let ran = run_cases(reports);
        let passed = passing(reports);
        let mut r = Ratchet::default();
        for name in baseline {
            if passed.contains(name) {
                continue;
            }
            if ran.contains(name) {
                r.regressed.push(name.clone());
            } else if !partial {
                r.missing.push(name.clone());
            }
        }
        r.new = passed.difference(baseline).cloned().collect();
        r
    }

    /// Whether the run keeps every case of the baseline passing.
    pub fn holds(&self) -> bool {
        self.regressed.is_empty() && self.missing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::CaseResult;
    use super::*;

    fn report(cases: &[(&str, Outcome)]) -> Vec<FileReport> {
        vec![FileReport {
            file: "f.json".into(),
            cases: cases
                .iter()
                .map(|(n, o)| CaseResult {
                    name: n.to_string(),
                    outcome: o.clone(),
                })
                .collect(),
        }]
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| case_id("f.json", n)).collect()
    }

    #[test]
    fn a_new_pass_does_not_hide_a_regression() {
        let run = report(&[
            ("a", Outcome::Passed),
            ("b", Outcome::Failed("x".into())),
            ("c", Outcome::Passed),
        ]);
        // Same count as the baseline (2), but b stopped passing.
        let r = Ratchet::compare(&set(&["a", "b"]), &run, false);
        assert!(!r.holds());
        assert_eq!(r.regressed, vec!["f.json :: b"]);
        assert_eq!(r.new, vec!["f.json :: c"]);
        assert!(r.missing.is_empty());
    }

    #[test]
    fn cases_gone_from_the_run_fail_unless_the_run_was_filtered() {
        let run = report(&[("a", Outcome::Passed)]);
        let r = Ratchet::compare(&set(&["a", "gone"]), &run, false);
        assert!(!r.holds());
        assert_eq!(r.missing, vec!["f.json :: gone"]);
        assert!(Ratchet::compare(&set(&["a", "gone"]), &run, true).holds());
        let held = Ratchet::compare(&set(&["a"]), &run, false);
        assert!(held.holds());
        assert_eq!(held, Ratchet::default());
    }

    #[test]
    fn baselines_round_trip_sorted_and_old_counts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline");
        let run = report(&[
            ("z - JSON", Outcome::Passed),
            ("ends with a space ", Outcome::Passed),
            ("a", Outcome::Passed),
            ("m", Outcome::NeedsRegistry),
        ]);
        assert_eq!(write(&path, &run).unwrap(), 3);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "f.json :: a\nf.json :: ends with a space \nf.json :: z - JSON\n"
        );
        assert_eq!(
            read(&path).unwrap(),
            set(&["a", "ends with a space ", "z - JSON"])
        );
        std::fs::write(&path, "851\n").unwrap();
        assert!(read(&path)
            .unwrap_err()
            .to_string()
            .contains("--write-baseline"));
    }
}
