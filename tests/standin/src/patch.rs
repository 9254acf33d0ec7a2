//! Patch formats (RFC 7386 merge patch, RFC 6902 JSON patch) and `managedFields` bookkeeping.

use serde_json::{json, Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {pointer:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

/// The parent container of `pointer` and the last token.
fn parent<'a>(doc: &'a mut Value, pointer: &str) -> Result<(&'a mut Value, String), String> {
    let mut toks = tokens(pointer)?;
    let last = toks.pop().ok_or("the root cannot be the target here")?;
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {pointer:?}"))?;
    }
    Ok((cur, last))
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (p, last) = parent(doc, path)?;
    let missing = || format!("unable to remove nonexistent key: {last}: missing value");
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(format!("add operation index out of bounds: {path:?}")),
        },
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

fn get<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, String> {
    let mut cur = doc;
    for t in tokens(path)? {
        cur = match cur {
            Value::Object(m) => m.get(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {path:?}"))?;
    }
    Ok(cur)
}

/// RFC 6902: add, remove, replace, move, copy and test, applied in order, all or nothing.
pub fn json_patch(doc: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array of operations")?;
    let mut out = doc.clone();
    for op in ops {
        let path = op["path"].as_str().ok_or("operation is missing \"path\"")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| "operation is missing \"value\"".to_string())
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| "operation is missing \"from\"".to_string())
        };
        match op["op"].as_str().unwrap_or_default() {
            "add" => add(&mut out, path, value()?)?,
            "remove" => {
                remove(&mut out, path)?;
            }
            "replace" => {
                if path.is_empty() {
                    out = value()?;
                } else {
                    get(&out, path)?;
                    let (p, last) = parent(&mut out, path)?;
                    match p {
                        Value::Object(m) => {
                            m.insert(last, value()?);
                        }
                        Value::Array(a) => {
                            let i: usize = last.parse().map_err(|_| format!("bad index in {path:?}"))?;
                            a[i] = value()?;
                        }
                        _ => return Err(format!("doc is missing path: {path:?}")),
                    }
                }
            }
            "move" => {
                let v = remove(&mut out, from()?)?;
                add(&mut out, path, v)?;
            }
            "copy" => {
                let v = get(&out, from()?)?.clone();
                add(&mut out, path, v)?;
            }
            "test" => {
                if *get(&out, path)? != value()? {
                    return Err(format!("testing value {path:?} failed"));
                }
            }
            other => return Err(format!("unexpected kind of operation {other:?}")),
        }
    }
    Ok(out)
}

/// An approximation of FieldsV1: `f:<key>` for every object key the manager sent (lists are
/// leaves), leaving out identity and server-managed metadata.
pub fn fields_v1(obj: &Value, include_status: bool) -> Value {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (format!("f:{k}"), walk(v))).collect()),
            _ => json!({}),
        }
    }
    let mut out = Map::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "status" if !include_status => {}
                "metadata" => {
                    let mut md = Map::new();
                    for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                        if let Some(x) = v.get(key) {
                            md.insert(format!("f:{key}"), walk(x));
                        }
                    }
                    if !md.is_empty() {
                        out.insert("f:metadata".into(), Value::Object(md));
                    }
                }
                _ => {
                    out.insert(format!("f:{k}"), walk(v));
                }
            }
        }
    }
    Value::Object(out)
}

/// Leaf paths of a FieldsV1 tree, e.g. `.spec.replicas`.
pub fn leaf_paths(fields: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(m) = fields.as_object() {
        if m.is_empty() {
            out.push(prefix.to_string());
        }
        for (k, v) in m {
            let key = k.strip_prefix("f:").unwrap_or(k);
            leaf_paths(v, &format!("{prefix}.{key}"), out);
        }
    }
}

/// The value at a leaf path produced by `leaf_paths`.
pub fn value_at<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path.split('.').skip(1).fold(obj, |cur, k| &cur[k])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [2]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [2]}));
        let ops = json!([
            {"op": "add", "path": "/l/-", "value": 3},
            {"op": "replace", "path": "/a/c", "value": "x"},
            {"op": "remove", "path": "/a/d"},
            {"op": "add", "path": "/m~1n", "value": true},
            {"op": "test", "path": "/l/0", "value": 2}
        ]);
        assert_eq!(
            json_patch(&t, &ops).unwrap(),
            json!({"a": {"c": "x"}, "l": [2, 3], "m/n": true})
        );
        assert!(json_patch(&t, &json!([{"op": "replace", "path": "/zz", "value": 1}])).is_err());
        let mut leaves = Vec::new();
        leaf_paths(
            &fields_v1(&json!({"spec": {"replicas": 2}, "metadata": {"name": "x"}}), false),
            "",
            &mut leaves,
        );
        assert_eq!(leaves, vec![".spec.replicas"]);
    }
}
