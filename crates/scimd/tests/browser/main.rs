//! End-to-end tests of the support console (admin listener, `/console`) and the customer's
//! setup page (SCIM listener, `/setup/<secret>`) in a real headless Chromium, driven through
//! WebDriver (`chromedriver`, fantoccini), against the real server built in-process.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `SCIMD_CHROMEDRIVER` and
//! `SCIMD_CHROMIUM`); without them the tests fail, they never pass silently. With
//! `SCIMD_SCREENSHOTS=DIR` the walk-through tests save the pictures of docs/console.md there
//! (scripts/screenshots.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod console;
mod security;
mod setup;
