//! Older stored shapes of a record, made from today's rows: the tests that check that rows
//! written before a format change still load build them from a row this version wrote.

use serde_json::Value;

/// A row of format 4 or 5 (several authenticators) turned back into the format-3 shape:
/// `"v": 3`, no `key_ceremonies` (none may be waiting),
/// its one authenticator as `active` (secret, parameters as `totp`, creation time as
/// `enrolled_at`, replay step), the pending enrollment without `purpose` and `label`. Only
/// rows with at most one authenticator, never used to learn an offset, have a format-3 shape.
pub fn to_format_3(mut row: Value) -> Value {
    let map = row.as_object_mut().expect("object");
    let list = map
        .remove("authenticators")
        .and_then(|a| a.as_array().cloned())
        .expect("a format-4 or -5 row");
    if let Some(c) = map.remove("key_ceremonies") {
        assert_eq!(
            c,
            serde_json::json!({"registration": null, "authentication": null}),
            "format 3 had no ceremonies"
        );
    }
    assert!(list.len() <= 1, "format 3 held one authenticator");
    let active = list.first().map_or(Value::Null, |a| {
        let totp = &a["factor"]["totp"];
        assert_eq!(totp["clock_offset"], 0, "format 3 had no clock offset");
        serde_json::json!({
            "secret": totp["secret"],
            "totp": totp["params"],
            "enrolled_at": a["created_at"],
            "last_used_step": totp["last_used_step"],
        })
    });
    map.insert("v".into(), Value::from(3));
    map.insert("active".into(), active);
    if let Some(Value::Object(pending)) = map.get_mut("pending") {
        pending.remove("purpose");
        pending.remove("label");
    }
    row
}

/// The first authenticator's TOTP secret slot (the `active` one of an older row).
pub fn first_secret(row: &Value) -> &Value {
    if row["v"] == 4 || row["v"] == 5 {
        &row["authenticators"][0]["factor"]["totp"]["secret"]
    } else {
        &row["active"]["secret"]
    }
}
