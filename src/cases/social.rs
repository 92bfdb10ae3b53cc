//! MySocialMedia: users posting, liking and commenting (`queries/social.sql`).
//!
//! Time advances in ticks of [`TICK_MS`]; each tick holds about
//! `rate × TICK_MS / 1000` actions at random instants, taken in time order:
//!
//! - a user creates a post (topic `posts`, key = author), edits one of their
//!   posts, or deletes it: a deleted post gets no event afterwards, and is
//!   deleted only [`QUIET_MS`] after its last like or comment;
//! - a user likes a post (topic `likes`, key = post), at most once while
//!   liked, or takes a like back (`unliked`);
//! - a user comments on a post (topic `comments`, key = post), or the
//!   commenter deletes their comment.
//!
//! Likes and comments go to posts at least [`QUIET_MS`] old. One post in 25
//! is viral: [`VIRAL_SHARE`] of the likes and comments go to viral posts, so
//! a few posts get bursts of about a hundred likes within a minute (enough to
//! trend). Only the [`ACTIVE_POSTS`] most recent posts receive interactions
//! (older ones scroll out of the feeds), which bounds memory.

use std::collections::{HashSet, VecDeque};

use serde_json::{json, Value};

use super::{Event, Params, Rng};

/// The simulation step.
pub const TICK_MS: i64 = 100;

/// A post takes likes and comments only this long after it was created, and
/// is deleted only this long after its last like or comment.
pub const QUIET_MS: i64 = 2_000;

/// Share of likes and comments that go to viral posts (when there are any).
pub const VIRAL_SHARE: f64 = 0.6;

/// Posts that still receive interactions.
pub const ACTIVE_POSTS: usize = 500;

/// At most this many actions per tick (a rate cap of 1,000,000/s).
const MAX_PER_TICK: f64 = 100_000.0;

const TOPICS: [&str; 10] = [
    "my morning run",
    "this new album",
    "the game last night",
    "our trip to the coast",
    "a recipe I tried",
    "the city at night",
    "my cat",
    "a book I can't put down",
    "the best coffee in town",
    "the sunset",
];

const REACTIONS: [&str; 8] = [
    "love this!",
    "so true",
    "where is this?",
    "haha",
    "amazing shot",
    "congrats!",
    "same here",
    "need to try it",
];

struct Post {
    id: String,
    author: usize,
    created_ms: i64,
    last_touch_ms: i64,
    viral: bool,
    likers: Vec<usize>,
    liked: HashSet<usize>,
    /// Live comments: (comment_id, commenter).
    comments: Vec<(String, usize)>,
}

struct Social {
    rng: Rng,
    users: usize,
    /// The active posts, oldest first.
    posts: VecDeque<Post>,
    next_post: u64,
    next_comment: u64,
    pending: VecDeque<Event>,
    tick_ms: i64,
    end_ms: i64,
    rate_per_tick: f64,
    carry: f64,
}

/// The events of MySocialMedia.
pub fn events(params: &Params) -> Box<dyn Iterator<Item = Event> + Send> {
    let rate_per_tick = (params.rate * TICK_MS as f64 / 1000.0).min(MAX_PER_TICK);
    let rate_per_tick = if rate_per_tick.is_finite() && rate_per_tick > 0.0 {
        rate_per_tick
    } else {
        0.0
    };
    Box::new(Social {
        rng: Rng::new(params.seed),
        users: ((params.rate * 20.0) as usize).clamp(200, 1_000_000),
        posts: VecDeque::new(),
        next_post: 1,
        next_comment: 1,
        pending: VecDeque::new(),
        tick_ms: params.start_ms,
        end_ms: params.end_ms(),
        rate_per_tick,
        // The first action comes at once.
        carry: 1.0 - rate_per_tick.min(1.0),
    })
}

/// A user id: `u001`, `u002`, ...
pub fn user_id(index: usize) -> String {
    format!("u{:03}", index + 1)
}

impl Iterator for Social {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.tick_ms >= self.end_ms || self.rate_per_tick == 0.0 {
                return None;
            }
            self.tick();
        }
    }
}

#[derive(Clone, Copy)]
enum Action {
    Create,
    Edit,
    DeletePost,
    Like,
    Unlike,
    Comment,
    DeleteComment,
}

const ACTIONS: [(Action, f64); 7] = [
    (Action::Create, 0.07),
    (Action::Edit, 0.015),
    (Action::DeletePost, 0.015),
    (Action::Like, 0.6),
    (Action::Unlike, 0.06),
    (Action::Comment, 0.2),
    (Action::DeleteComment, 0.04),
];

impl Social {
    fn tick(&mut self) {
        self.carry += self.rate_per_tick;
        let n = self.carry.floor();
        self.carry -= n;
        let span = TICK_MS.min(self.end_ms - self.tick_ms);
        let mut times: Vec<i64> = (0..n as usize)
            .map(|_| self.tick_ms + self.rng.range(0, span - 1))
            .collect();
        times.sort_unstable();
        for t in times {
            self.act(t);
        }
        self.tick_ms += TICK_MS;
    }

    fn act(&mut self, now: i64) {
        let weights: Vec<f64> = ACTIONS.iter().map(|a| a.1).collect();
        let action = ACTIONS[self.rng.weighted(&weights)].0;
        let done = match action {
            Action::Create => false,
            Action::Edit => self.edit(now),
            Action::DeletePost => self.delete_post(now),
            Action::Like => self.like(now),
            Action::Unlike => self.unlike(now),
            Action::Comment => self.comment(now),
            Action::DeleteComment => self.delete_comment(now),
        };
        if !done {
            self.create(now);
        }
    }

    fn create(&mut self, now: i64) {
        let author = self.rng.below(self.users as u64) as usize;
        let id = format!("p{}", self.next_post);
        self.next_post += 1;
        let content = self.content();
        self.post_event(author, &id, "created", json!(content), now);
        self.posts.push_back(Post {
            id,
            author,
            created_ms: now,
            last_touch_ms: now,
            viral: self.rng.chance(0.04),
            likers: Vec::new(),
            liked: HashSet::new(),
            comments: Vec::new(),
        });
        if self.posts.len() > ACTIVE_POSTS {
            self.posts.pop_front();
        }
    }

    fn edit(&mut self, now: i64) -> bool {
        let Some(i) = self.pick(now, false) else {
            return false;
        };
        let content = format!("{} (edited)", self.content());
        let p = &self.posts[i];
        let (author, id) = (p.author, p.id.clone());
        self.post_event(author, &id, "edited", json!(content), now);
        true
    }

    fn delete_post(&mut self, now: i64) -> bool {
        let Some(i) = self.pick(now, false) else {
            return false;
        };
        if self.posts[i].last_touch_ms > now - QUIET_MS {
            return false;
        }
        if let Some(p) = self.posts.remove(i) {
            self.post_event(p.author, &p.id, "deleted", Value::Null, now);
        }
        true
    }

    fn like(&mut self, now: i64) -> bool {
        let Some(i) = self.pick(now, true) else {
            return false;
        };
        for _ in 0..5 {
            let user = self.rng.below(self.users as u64) as usize;
            let p = &mut self.posts[i];
            if p.liked.insert(user) {
                p.likers.push(user);
                p.last_touch_ms = now;
                let id = p.id.clone();
                self.like_event(&id, user, "liked", now);
                return true;
            }
        }
        false
    }

    fn unlike(&mut self, now: i64) -> bool {
        let Some(i) = self.pick(now, false) else {
            return false;
        };
        let p = &mut self.posts[i];
        if p.likers.is_empty() {
            return false;
        }
        let k = self.rng.below(p.likers.len() as u64) as usize;
        let user = p.likers.swap_remove(k);
        p.liked.remove(&user);
        p.last_touch_ms = now;
        let id = p.id.clone();
        self.like_event(&id, user, "unliked", now);
        true
    }

    fn comment(&mut self, now: i64) -> bool {
        let Some(i) = self.pick(now, true) else {
            return false;
        };
        let user = self.rng.below(self.users as u64) as usize;
        let comment_id = format!("c{}", self.next_comment);
        self.next_comment += 1;
        let body = self.rng.pick(&REACTIONS).copied().unwrap_or("nice");
        let p = &mut self.posts[i];
        p.comments.push((comment_id.clone(), user));
        p.last_touch_ms = now;
        let post = p.id.clone();
        self.comment_event(&post, &comment_id, user, "commented", json!(body), now);
        true
    }

    fn delete_comment(&mut self, now: i64) -> bool {
        let Some(i) = self.pick(now, false) else {
            return false;
        };
        let p = &mut self.posts[i];
        if p.comments.is_empty() {
            return false;
        }
        let k = self.rng.below(p.comments.len() as u64) as usize;
        let (comment_id, user) = p.comments.swap_remove(k);
        p.last_touch_ms = now;
        let post = p.id.clone();
        self.comment_event(&post, &comment_id, user, "deleted", Value::Null, now);
        true
    }

    /// An active post at least [`QUIET_MS`] old; `trend`: likes and
    /// comments favour viral posts.
    fn pick(&mut self, now: i64, trend: bool) -> Option<usize> {
        // Posts are in creation order: the old enough ones are a prefix.
        let old = self
            .posts
            .partition_point(|p| p.created_ms <= now - QUIET_MS);
        if old == 0 {
            return None;
        }
        if trend && self.rng.chance(VIRAL_SHARE) {
            for _ in 0..32 {
                let i = self.rng.below(old as u64) as usize;
                if self.posts[i].viral {
                    return Some(i);
                }
            }
        }
        Some(self.rng.below(old as u64) as usize)
    }

    fn content(&mut self) -> String {
        let topic = self.rng.pick(&TOPICS).copied().unwrap_or("today");
        let n = self.rng.range(1, 99);
        format!("Thoughts on {topic}, day {n}")
    }

    fn post_event(&mut self, author: usize, post: &str, action: &str, content: Value, now: i64) {
        self.pending.push_back(Event::new(
            "posts",
            Some(user_id(author)),
            json!({"post_id": post, "action": action, "content": content, "event_ts": now}),
            now,
        ));
    }

    fn like_event(&mut self, post: &str, user: usize, action: &str, now: i64) {
        self.pending.push_back(Event::new(
            "likes",
            Some(post.to_string()),
            json!({"user_id": user_id(user), "action": action, "event_ts": now}),
            now,
        ));
    }

    fn comment_event(
        &mut self,
        post: &str,
        comment_id: &str,
        user: usize,
        action: &str,
        body: Value,
        now: i64,
    ) {
        self.pending.push_back(Event::new(
            "comments",
            Some(post.to_string()),
            json!({
                "comment_id": comment_id,
                "user_id": user_id(user),
                "action": action,
                "body": body,
                "event_ts": now,
            }),
            now,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    fn events_of(rate: f64, secs: u64) -> Vec<Event> {
        events(&Params {
            seed: 11,
            rate,
            duration: Duration::from_secs(secs),
            start_ms: 1_700_000_000_000,
        })
        .collect()
    }

    #[test]
    fn about_rate_times_duration_events() {
        let n = events_of(40.0, 60).len();
        assert!((2_300..=2_500).contains(&n), "{n}");
    }

    #[test]
    fn nothing_happens_to_a_post_after_its_deletion_and_likes_are_unique() {
        let events = events_of(40.0, 120);
        let mut created: HashMap<String, i64> = HashMap::new();
        let mut deleted: HashSet<String> = HashSet::new();
        let mut liked: HashSet<(String, String)> = HashSet::new();
        let mut comments: HashSet<String> = HashSet::new();
        let mut last_touch: HashMap<String, i64> = HashMap::new();
        for e in &events {
            let v = &e.value;
            let post = match e.topic {
                "posts" => v["post_id"].as_str().unwrap_or_default().to_string(),
                _ => e.key.clone().unwrap_or_default(),
            };
            assert!(
                !deleted.contains(&post),
                "an event after {post} was deleted"
            );
            let action = v["action"].as_str().unwrap_or_default();
            match (e.topic, action) {
                ("posts", "created") => {
                    assert!(created.insert(post, e.timestamp).is_none());
                    continue;
                }
                ("posts", "deleted") => {
                    let quiet = last_touch
                        .get(&post)
                        .is_none_or(|t| *t <= e.timestamp - QUIET_MS);
                    assert!(quiet, "{post} deleted right after an interaction");
                    deleted.insert(post.clone());
                }
                ("likes", a) => {
                    let user = v["user_id"].as_str().unwrap_or_default().to_string();
                    let fresh = liked.insert((post.clone(), user.clone()));
                    assert_eq!(fresh, a == "liked", "{a} by {user} on {post}");
                    if a == "unliked" {
                        liked.remove(&(post.clone(), user));
                    }
                }
                ("comments", a) => {
                    let id = v["comment_id"].as_str().unwrap_or_default().to_string();
                    assert_eq!(comments.insert(id.clone()), a == "commented", "{a} {id}");
                }
                _ => {}
            }
            let created = created.get(&post).copied();
            assert!(created.is_some_and(|c| c <= e.timestamp - QUIET_MS || e.topic == "posts"));
            if e.topic != "posts" {
                last_touch.insert(post, e.timestamp);
            }
        }
        assert!(!deleted.is_empty());
    }

    #[test]
    fn viral_posts_get_bursts() {
        let events = events_of(40.0, 40);
        let mut per_post: HashMap<&str, usize> = HashMap::new();
        for e in &events {
            let liked = e.topic == "likes" && e.value["action"] == "liked";
            let commented = e.topic == "comments" && e.value["action"] == "commented";
            if liked || commented {
                *per_post.entry(e.key.as_deref().unwrap_or("")).or_default() += 1;
            }
        }
        let trending = per_post.values().filter(|n| **n >= 50).count();
        assert!(trending >= 3, "{per_post:?}");
    }

    #[test]
    fn odd_params_do_not_panic() {
        for (rate, ms) in [
            (0.001, 1),
            (1e12, 300),
            (f64::NAN, 1_000),
            (5.0, 0),
            (-1.0, 10),
        ] {
            let p = Params {
                seed: 1,
                rate,
                duration: Duration::from_millis(ms),
                start_ms: 0,
            };
            assert!(events(&p).take(300_000).count() <= 300_000);
        }
    }
}
