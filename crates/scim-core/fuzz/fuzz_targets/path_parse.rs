//! PATCH path parser: no panics on any input; `display` then `parse` gives back the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::{AttrPath, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok(attr) = AttrPath::parse(text) {
        let shown = attr.to_string();
        match AttrPath::parse(&shown) {
            Ok(again) => {
                assert_eq!(again, attr, "AttrPath round trip changed the path\ninput: {text:?}\nshown: {shown:?}")
            }
            Err(e) => panic!("the AttrPath display form does not parse: {e:?}\ninput: {text:?}\nshown: {shown:?}"),
        }
    }

    let Ok(path) = Path::parse(text) else { return };
    let shown = path.to_string();
    match Path::parse(&shown) {
        Ok(again) => assert_eq!(again, path, "Path round trip changed the path\ninput: {text:?}\nshown: {shown:?}"),
        Err(e) => panic!("the Path display form does not parse: {e:?}\ninput: {text:?}\nshown: {shown:?}"),
    }
});
