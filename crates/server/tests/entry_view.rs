//! The API's view of an entry (`EntryView`, the body of `GET /v1/entries/{id}` and of every
//! answer that returns entries) carries exactly the fields of the entry's canonical encoding,
//! with the same names and values, for every kind: a kind or field added to one and forgotten
//! in the other fails here.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use serde_json::Value;
use timecredits_domain::EntryKind;
use timecredits_server::api::EntryView;
use timecredits_testkit::entries::example;

#[test]
fn the_entry_view_of_every_kind_is_its_canonical_encoding() {
    for kind in EntryKind::ALL {
        let entry = example(kind);
        assert_eq!(entry.body.kind(), kind);
        let canonical: Value = serde_json::from_slice(&entry.encode()).unwrap();
        let view = serde_json::to_value(EntryView::from(&entry)).unwrap();
        assert_eq!(view, canonical, "the view of a {} entry", kind.as_str());
    }
}
