//! Older stored shapes of a record, made from today's rows: the tests that check that rows
//! written before a format change still load build them from a row this version wrote.

use serde_json::Value;

/// A row of format 8 turned back into the format-7 shape: `"v": 7`, the recovery set's
/// `digests` and `used_at` columns as its list of `codes` (`{"digest", "used_at"}`). A row of
/// another format is returned as it is.
pub fn to_format_7(mut row: Value) -> Value {
    if row["v"] != 8 {
        return row;
    }
    row["v"] = Value::from(7);
    if let Some(Value::Object(set)) = row.get_mut("recovery") {
        let digests = set.remove("digests").expect("digests");
        let used_at = set.remove("used_at").expect("used_at");
        let (digests, used_at) = (
            digests.as_array().expect("list"),
            used_at.as_array().expect("list"),
        );
        assert_eq!(digests.len(), used_at.len(), "columns of one length");
        let codes = digests
            .iter()
            .zip(used_at)
            .map(|(digest, used_at)| serde_json::json!({"digest": digest, "used_at": used_at}))
            .collect();
        set.insert("codes".into(), Value::Array(codes));
    }
    row
}

/// A row of format 5 to 8 (several authenticators) turned back into the format-4 shape:
/// `"v": 4`, no `key_ceremonies` (none may be waiting), no ticket deadline (none set),
/// its one authenticator as `active` (secret, parameters as `totp`, creation time as
/// `enrolled_at`, replay step), the pending enrollment without `purpose` and `label`. Only
/// rows with at most one authenticator, never used to learn an offset, have a format-4 shape.
/// A row without `authenticators` (already of an older format) is returned as it is.
pub fn to_format_4(row: Value) -> Value {
    let mut row = to_format_7(row);
    let map = row.as_object_mut().expect("object");
    // Format 7's ticket deadline: none yet in a row that only loaded an older one.
    if let Some(Value::Object(t)) = map.get_mut("tickets")
        && let Some(through) = t.remove("through")
    {
        assert_eq!(through, 0, "a ticket used since format 7");
        assert_eq!(t.remove("at_through"), Some(Value::Array(vec![])));
    }
    let Some(list) = map.remove("authenticators") else {
        return row;
    };
    if let Some(c) = map.remove("key_ceremonies") {
        assert_eq!(
            c,
            serde_json::json!({"registration": null, "authentication": null}),
            "format 4 had no ceremonies"
        );
    }
    let list = list.as_array().cloned().expect("a list of authenticators");
    assert!(list.len() <= 1, "format 4 held one authenticator");
    let active = list.first().map_or(Value::Null, |a| {
        let totp = &a["factor"]["totp"];
        assert_eq!(totp["clock_offset"], 0, "format 4 had no clock offset");
        serde_json::json!({
            "secret": totp["secret"],
            "totp": totp["params"],
            "enrolled_at": a["created_at"],
            "last_used_step": totp["last_used_step"],
        })
    });
    map.insert("v".into(), Value::from(4));
    map.insert("active".into(), active);
    if let Some(Value::Object(pending)) = map.get_mut("pending") {
        pending.remove("purpose");
        pending.remove("label");
    }
    row
}

/// The first authenticator's TOTP secret slot (the `active` one of an older row).
pub fn first_secret(row: &Value) -> &Value {
    if [5, 6, 7, 8].iter().any(|v| row["v"] == *v) {
        &row["authenticators"][0]["factor"]["totp"]["secret"]
    } else {
        &row["active"]["secret"]
    }
}
