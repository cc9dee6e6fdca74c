//! Benchmark of the scim-core hot paths with the request shapes Microsoft Entra ID sends
//! (see CLIENTS.md): filter parsing, filter evaluation, ingest of a create body, a typical
//! user PATCH (parse, apply, both) and a group PATCH adding 100 members.
//!
//! Each operation is warmed up, then timed in batches of about 200 ms; the table gives the
//! time per operation as the median and the minimum over the batches, and operations per
//! second at the median. The last lines check the targets of the issue
//! (filter parse < 2 µs, typical Entra PATCH < 20 µs).
//!
//! Run with: `cargo bench -p scim-core --bench core`

use std::hint::black_box;
use std::time::{Duration, Instant};

use scim_core::patch::{self, PatchLimits, PatchRequest};
use scim_core::resource::{self, UnknownAttributes};
use scim_core::{Filter, Registry, Result, eval};
use serde_json::{Value, json};

const WARMUP: Duration = Duration::from_millis(100);
const BATCH: Duration = Duration::from_millis(200);
const BATCHES: usize = 7;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER_ID: &str = "2819c223-7f76-453a-919d-413861904646";
const MANAGER_ID: &str = "26118915-6090-4610-87e4-49d8ca9f808d";
const GROUP_ID: &str = "e9e30dba-f08f-4109-8486-d5c6a331660a";

/// Per-operation times in nanoseconds.
struct Row {
    median: f64,
    min: f64,
}

/// Times `f`: a warm-up that also sizes the batches, then `BATCHES` batches of about `BATCH`.
/// Prints the row and returns it.
fn time<T>(name: &str, mut f: impl FnMut() -> T) -> Row {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < WARMUP {
        black_box(f());
        calls += 1;
    }
    let per_batch = (calls as f64 * BATCH.as_secs_f64() / start.elapsed().as_secs_f64()).max(1.0) as u64;
    let mut per_op: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let row = Row { median: per_op[BATCHES / 2], min: per_op[0] };
    println!("{name:<58} {:>11} {:>11} {:>13.0}", fmt_ns(row.median), fmt_ns(row.min), 1e9 / row.median);
    row
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 { format!("{ns:.0} ns") } else { format!("{:.2} µs", ns / 1_000.0) }
}

/// The value of a result that must succeed; otherwise prints the input and the error.
fn must<T>(what: &str, input: &str, r: Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            println!("ERROR {what}: input {input}\n      -> {e} (status {}, scimType {:?})", e.status, e.scim_type);
            None
        }
    }
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn machine() {
    let cpus = std::thread::available_parallelism().map_or_else(|_| "?".to_owned(), |n| n.to_string());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    println!("machine: {cpus} CPUs available, {model}, {}/{}", std::env::consts::OS, std::env::consts::ARCH);
}

fn main() {
    machine();
    println!("batches: {BATCHES} x ~{} ms after {} ms warm-up\n", BATCH.as_millis(), WARMUP.as_millis());
    println!("{:<58} {:>11} {:>11} {:>13}", "operation", "median", "min", "ops/s");

    let registry = Registry::standard();
    let (Some(user_def), Some(group_def)) = (registry.resource("User"), registry.resource("Group")) else {
        println!("ERROR: the standard registry has no User or Group resource type");
        return;
    };

    // 1. The filters Entra sends (CLIENTS.md §1: test connection, matching, groups).
    let membership = format!("id eq \"{GROUP_ID}\" and members eq \"{USER_ID}\"");
    let employee_number = format!("{ENTERPRISE}:employeeNumber eq \"701984\"");
    let filters = [
        ("userName eq <GUID> (test connection)", r#"userName eq "0f6c0a4e-3b1d-4f0e-9a51-8c2d7e6b5a49""#),
        ("userName eq <upn>", r#"userName eq "jdoe@contoso.com""#),
        ("externalId eq", r#"externalId eq "jdoe""#),
        ("emails[type eq \"work\"].value eq", r#"emails[type eq "work"].value eq "jdoe@contoso.com""#),
        ("enterprise:employeeNumber eq", employee_number.as_str()),
        ("displayName eq (group)", r#"displayName eq "Sales""#),
        ("id eq and members eq (membership check)", membership.as_str()),
    ];
    let mut slowest_filter: Option<f64> = Some(0.0);
    for (label, text) in filters {
        if must("Filter::parse", text, Filter::parse(text)).is_some() {
            let row = time(&format!("filter parse: {label}"), || Filter::parse(black_box(text)));
            slowest_filter = slowest_filter.map(|s| s.max(row.median));
        } else {
            slowest_filter = None;
        }
    }

    // 3. Ingest of the create body (timed before 2, which needs its result).
    let create = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "jdoe", "userName": "jdoe@contoso.com", "active": true, "displayName": "John Doe",
        "title": "Site engineer", "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": "jdoe@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "John Doe", "familyName": "Doe", "givenName": "John"},
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Bern", "postalCode": "3000", "country": "CH"}],
        "phoneNumbers": [{"type": "work", "value": "4255550100"}, {"type": "mobile", "value": "4255550101"}],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Ops"},
        "roles": []
    });
    let ingested =
        must("resource::ingest", &create.to_string(), resource::ingest(&user_def, &create, UnknownAttributes::Drop));
    let Some(mut user) = ingested.map(|i| i.resource) else { return };
    time("resource::ingest: Entra create body", || {
        resource::ingest(&user_def, black_box(&create), UnknownAttributes::Drop)
    });
    if let Some(obj) = user.as_object_mut() {
        obj.insert("id".into(), json!(USER_ID));
    }

    // 2. Evaluation of the matching filter against the stored user.
    let upn = r#"userName eq "jdoe@contoso.com""#;
    if let Some(filter) = must("Filter::parse", upn, Filter::parse(upn)) {
        match eval::matches(&user_def, &filter, &user) {
            Ok(true) => {}
            other => println!("NOTE eval::matches({upn}) on the created user gave {other:?}, expected Ok(true)"),
        }
        time("eval::matches: userName eq <upn> (match)", || eval::matches(&user_def, &filter, black_box(&user)));
    }

    // 4. A typical Entra user PATCH (default, PascalCase shapes).
    let user_patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "John M. Doe"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "john.doe@contoso.com"},
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "2 Station Rd"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Zurich"},
            {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Field Ops"},
            {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": MANAGER_ID},
            {"op": "Replace", "path": "active", "value": "False"}
        ]
    });
    let limits = PatchLimits::default();
    let text = user_patch.to_string();
    let mut patch_total: Option<f64> = None;
    if let Some(req) = must("PatchRequest::parse", &text, PatchRequest::parse(&user_patch, &limits)) {
        time("user PATCH (7 ops): parse", || PatchRequest::parse(black_box(&user_patch), &limits));
        if let Some(out) = must("patch::apply", &text, patch::apply(&user_def, &user, &req)) {
            check_user_patch(&out.resource);
            time("user PATCH (7 ops): apply", || patch::apply(&user_def, black_box(&user), &req));
            let row = time("user PATCH (7 ops): parse + apply", || {
                PatchRequest::parse(black_box(&user_patch), &limits).and_then(|r| patch::apply(&user_def, &user, &r))
            });
            patch_total = Some(row.median);
        }
    }

    // 5. A group PATCH adding 100 members in one operation.
    let group_body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"});
    let members: Vec<Value> = (0..100u64)
        .map(|i| json!({"$ref": null, "value": format!("{i:08x}-7f76-453a-919d-{:012x}", i * 7919)}))
        .collect();
    let group_patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members", "value": members}]
    });
    let text = group_patch.to_string();
    let group = must(
        "resource::ingest",
        &group_body.to_string(),
        resource::ingest(&group_def, &group_body, UnknownAttributes::Drop),
    );
    if let Some(mut group) = group.map(|g| g.resource) {
        if let Some(obj) = group.as_object_mut() {
            obj.insert("id".into(), json!(GROUP_ID));
        }
        let applied = PatchRequest::parse(&group_patch, &limits).and_then(|r| patch::apply(&group_def, &group, &r));
        if let Some(out) = must("group PATCH", &text, applied) {
            if out.members.add.len() != 100 {
                println!("NOTE group PATCH: the member delta adds {} members, expected 100", out.members.add.len());
            }
            time("group PATCH: add 100 members, parse + apply", || {
                PatchRequest::parse(black_box(&group_patch), &limits).and_then(|r| patch::apply(&group_def, &group, &r))
            });
        }
    }

    println!();
    match slowest_filter {
        Some(ns) => println!(
            "filter parse (Entra filters): target < 2 µs: {} (slowest median {})",
            pass(ns < 2_000.0),
            fmt_ns(ns)
        ),
        None => println!("filter parse (Entra filters): target < 2 µs: FAIL (a filter did not parse, see above)"),
    }
    match patch_total {
        Some(ns) => println!(
            "typical Entra PATCH (parse+apply): target < 20 µs: {} (median {})",
            pass(ns < 20_000.0),
            fmt_ns(ns)
        ),
        None => println!("typical Entra PATCH (parse+apply): target < 20 µs: FAIL (the PATCH failed, see above)"),
    }
}

/// Prints a note for each way the patched user differs from what CLIENTS.md requires.
fn check_user_patch(user: &Value) {
    let work_addresses: Vec<&Value> =
        user["addresses"].as_array().map(|a| a.iter().filter(|x| x["type"] == "work").collect()).unwrap_or_default();
    let checks = [
        ("displayName replaced", user["displayName"] == "John M. Doe"),
        (
            "work email replaced",
            user["emails"].as_array().is_some_and(|e| e.iter().any(|x| x["value"] == "john.doe@contoso.com")),
        ),
        ("one work address", work_addresses.len() == 1),
        (
            "address street and locality set",
            work_addresses.first().is_some_and(|a| a["streetAddress"] == "2 Station Rd" && a["locality"] == "Zurich"),
        ),
        ("department replaced", user[ENTERPRISE]["department"] == "Field Ops"),
        ("manager stored as {\"value\": id}", user[ENTERPRISE]["manager"]["value"] == MANAGER_ID),
        ("active is false", user["active"] == false),
    ];
    for (what, ok) in checks {
        if !ok {
            println!("NOTE user PATCH result: expected {what}; got {user}");
        }
    }
}
