//! What to try on each case study: the pull and push queries the demo
//! prints and the README walks through.

use super::Case;

/// One query to try, and what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub what: &'static str,
    pub sql: &'static str,
}

const fn step(what: &'static str, sql: &'static str) -> Step {
    Step { what, sql }
}

/// The queries to try on a case, in the order to try them.
pub fn tour(case: Case) -> &'static [Step] {
    match case {
        Case::MovieFlix => MOVIEFLIX,
        Case::GetTaxi => GETTAXI,
        Case::Social => SOCIAL,
        Case::MyBank => MYBANK,
        Case::Logs => LOGS,
    }
}

const MOVIEFLIX: &[Step] = &[
    step(
        "Where user u1 left each show (resume points):",
        "SELECT * FROM resume_points WHERE user_id = 'u1'",
    ),
    step(
        "User u1's live profile:",
        "SELECT * FROM user_profiles WHERE user_id = 'u1'",
    ),
];

const GETTAXI: &[Step] = &[step(
    "Where taxis are now:",
    "SELECT * FROM taxi_locations ORDER BY taxi_id LIMIT 5",
)];

const SOCIAL: &[Step] = &[step(
    "The most liked live posts:",
    "SELECT * FROM posts_with_counts ORDER BY like_count DESC LIMIT 5",
)];

const MYBANK: &[Step] = &[step(
    "Thresholds in force:",
    "SELECT * FROM user_thresholds ORDER BY user_id LIMIT 5",
)];

const LOGS: &[Step] = &[];
