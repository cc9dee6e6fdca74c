//! PATCH engine on raw JSON: parsing and applying any body to a realistic User and Group
//! never panics (errors are fine).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::patch::{self, PatchRequest};
use scim_core::resource::UnknownAttributes;
use scim_core_fuzz::{GROUP, USER, assert_reingests, group_def, user_def};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(req) = PatchRequest::parse(&body, &Default::default()) else { return };
    let (user, group) = (user_def(), group_def());
    // Applying again to the result exercises the engine on documents it produced itself.
    if let Ok(out) = patch::apply(&user, &USER, &req) {
        assert_reingests(&user, &out.resource, &body);
        if let Ok(again) = patch::apply(&user, &out.resource, &req) {
            assert_reingests(&user, &again.resource, &body);
        }
    }
    if let Ok(out) = patch::apply(&group, &GROUP, &req) {
        assert_reingests(&group, &out.resource, &body);
        if let Ok(again) = patch::apply(&group, &out.resource, &req) {
            assert_reingests(&group, &again.resource, &body);
        }
    }
    let _ = patch::apply_with(&user, &USER, &req, UnknownAttributes::Reject);
    let _ = patch::apply_with(&group, &GROUP, &req, UnknownAttributes::Reject);
});
