//! Just enough Kubernetes protobuf to read access reviews: kubectl sends built-in typed requests
//! (`kubectl auth can-i`) as `application/vnd.kubernetes.protobuf`.

use serde_json::{json, Map, Value};

/// One decoded protobuf field: its number and, for length-delimited fields, the bytes.
struct Field<'a> {
    num: u64,
    bytes: Option<&'a [u8]>,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        let bytes = match wire {
            0 => {
                varint(buf, &mut pos)?;
                None
            }
            1 => {
                pos += 8;
                None
            }
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let b = buf.get(pos..pos + len)?;
                pos += len;
                Some(b)
            }
            5 => {
                pos += 4;
                None
            }
            _ => return None,
        };
        out.push(Field { num, bytes });
    }
    Some(out)
}

fn text(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

/// Decodes a message whose fields are all strings (repeated ones into arrays), by field names.
fn strings(buf: &[u8], names: &[(u64, &str)], repeated: &[u64]) -> Option<Value> {
    let mut m = Map::new();
    for f in fields(buf)? {
        let (Some(name), Some(b)) = (names.iter().find(|(n, _)| *n == f.num).map(|(_, s)| *s), f.bytes) else {
            continue;
        };
        if repeated.contains(&f.num) {
            m.entry(name).or_insert_with(|| json!([])).as_array_mut()?.push(text(b));
        } else {
            m.insert(name.into(), text(b));
        }
    }
    Some(Value::Object(m))
}

const RESOURCE_ATTRS: &[(u64, &str)] = &[
    (1, "namespace"),
    (2, "verb"),
    (3, "group"),
    (4, "version"),
    (5, "resource"),
    (6, "subresource"),
    (7, "name"),
];

fn spec(buf: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    for f in fields(buf)? {
        let Some(b) = f.bytes else { continue };
        match f.num {
            1 => m.insert("resourceAttributes".into(), strings(b, RESOURCE_ATTRS, &[])?),
            2 => m.insert(
                "nonResourceAttributes".into(),
                strings(b, &[(1, "path"), (2, "verb")], &[])?,
            ),
            3 => m.insert("user".into(), text(b)),
            4 => {
                m.entry("groups")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()?
                    .push(text(b));
                None
            }
            6 => m.insert("uid".into(), text(b)),
            _ => None,
        };
    }
    Some(Value::Object(m))
}

/// Decodes a `k8s\0`-enveloped SubjectAccessReview or SelfSubjectAccessReview into JSON.
pub fn decode_access_review(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(b"k8s\0")?;
    let (mut api_version, mut kind, mut raw) = (Value::Null, Value::Null, None);
    for f in fields(unknown)? {
        match (f.num, f.bytes) {
            (1, Some(tm)) => {
                for t in fields(tm)? {
                    match (t.num, t.bytes) {
                        (1, Some(b)) => api_version = text(b),
                        (2, Some(b)) => kind = text(b),
                        _ => {}
                    }
                }
            }
            (2, Some(b)) => raw = Some(b),
            _ => {}
        }
    }
    let mut out = json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
    for f in fields(raw?)? {
        if let (2, Some(b)) = (f.num, f.bytes) {
            out["spec"] = spec(b)?;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(num: u64, b: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8, b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn decodes_an_ssar() {
        let attrs = [ld(1, b"kf"), ld(2, b"list"), ld(5, b"pods")].concat();
        let raw = ld(2, &ld(1, &attrs));
        let tm = [ld(1, b"authorization.k8s.io/v1"), ld(2, b"SelfSubjectAccessReview")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode_access_review(&body).unwrap();
        assert_eq!(v["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "kf", "verb": "list", "resource": "pods"})
        );
    }
}
