//! Filter parser: no panics on any input; `display` then `parse` gives back the same filter;
//! checking and evaluating a parsed filter against realistic resources never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::{Filter, eval};
use scim_core_fuzz::{GROUP, USER, group_def, user_def};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(filter) = Filter::parse(text) else { return };

    let shown = filter.to_string();
    match Filter::parse(&shown) {
        Ok(again) => {
            assert_eq!(again, filter, "display/parse round trip changed the filter\ninput: {text:?}\nshown: {shown:?}")
        }
        Err(e) => panic!("the display form does not parse: {e:?}\ninput: {text:?}\nshown: {shown:?}"),
    }

    let user = user_def();
    let _ = eval::check(&user, &filter);
    let _ = eval::matches(&user, &filter, &USER);
    let group = group_def();
    let _ = eval::check(&group, &filter);
    let _ = eval::matches(&group, &filter, &GROUP);
});
