//! The write pipeline: create, update, patch, server-side apply, delete and seeding, each
//! setting the server-owned metadata and bumping the one resourceVersion counter.

use super::*;

impl State {
    /// POST, apply-create and seeding.
    pub fn create(
        &mut self,
        res: &Res,
        ns: &str,
        mut body: Value,
        ctx: &Ctx,
        operation: &str,
    ) -> Result<Value, ApiError> {
        Self::check_identity(res, &mut body, ns, None)?;
        let sent = body.clone();
        {
            let m = md_mut(&mut body);
            let has_name = m.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
            if !has_name {
                if let Some(g) = m.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty()) {
                    let n = format!("{g}{}", name_suffix());
                    m.insert("name".into(), json!(n));
                }
            }
        }
        Self::validate(res, &body)?;
        self.require_namespace(res, ns)?;
        let name = name_of(&body).to_string();
        let key = Self::key(res, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&res.group, &res.plural, &name));
        }
        let now = now_rfc3339();
        {
            let m = md_mut(&mut body);
            for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(k);
            }
            if !ctx.seeding || !m.contains_key("uid") {
                m.insert("uid".into(), json!(uuid4()));
            }
            if !ctx.seeding || !m.contains_key("creationTimestamp") {
                m.insert("creationTimestamp".into(), json!(now));
            }
            m.insert("generation".into(), json!(1));
            if !ctx.seeding {
                m.remove("managedFields");
            }
            m.remove("resourceVersion");
        }
        if res.status && !ctx.seeding {
            if let Some(o) = body.as_object_mut() {
                o.remove("status");
            }
        }
        if res.is_namespace() {
            if body["spec"]["finalizers"].is_null() {
                body["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            if body["status"]["phase"].is_null() {
                body["status"] = json!({"phase": "Active"});
            }
        }
        let mut pending = None;
        if res.is_crd() {
            let now_established = ctx.seeding || self.established_delay.is_zero();
            body["status"] = crd_status(&body, now_established);
            if !now_established {
                pending = Some((name.clone(), Instant::now() + self.established_delay));
            }
        }
        if !ctx.seeding {
            let entry = managed_entry(
                &ctx.manager,
                operation,
                &res.api_version(),
                fields_v1(&sent, false),
                None,
            );
            record_manager(&mut body, entry);
        }
        if ctx.dry_run {
            return Ok(Self::present(res, &body));
        }
        let rv = self.next_rv();
        md_mut(&mut body).insert("resourceVersion".into(), json!(rv));
        if let Some(p) = pending {
            self.pending.push(p);
        }
        let out = Self::present(res, &body);
        self.put(key, body, "ADDED");
        Ok(out)
    }

    /// The shared tail of PUT, PATCH and apply on an existing object.
    pub(super) fn commit_update(
        &mut self,
        res: &Res,
        live: &Value,
        mut new: Value,
        ctx: &Ctx,
        operation: &str,
        sent: &Value,
    ) -> Result<Value, ApiError> {
        let name = name_of(live).to_string();
        let ns = md(live)["namespace"].as_str().unwrap_or("").to_string();
        if md(&new)["name"].as_str() != Some(name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&new)
            )));
        }
        if let Some(rv) = md(&new)["resourceVersion"].as_str().filter(|r| !r.is_empty()) {
            if Some(rv) != md(live)["resourceVersion"].as_str() {
                return Err(ApiError::conflict(&res.group, &res.plural, &name));
            }
        }
        if new["kind"] != json!(res.kind) || new["apiVersion"] != json!(res.api_version()) {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                &name,
                "kind",
                "FieldValueInvalid",
                "Invalid value: kind and apiVersion may not change",
            ));
        }
        let on_status = ctx.on_status();
        if on_status {
            // The status subresource changes only .status.
            let status = new.get("status").cloned();
            new = live.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
        } else if res.status {
            // Main-resource writes keep the server-managed status.
            match live.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
        }
        {
            let lm = md(live).clone();
            let m = md_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "managedFields",
            ] {
                match lm.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.insert("namespace".into(), json!(ns));
            if ns.is_empty() {
                m.remove("namespace");
            }
        }
        Self::validate(res, &new)?;
        if res.is_crd() && !on_status {
            let established = crate::resources::is_established(live);
            let conds = live["status"]["conditions"].clone();
            new["status"] = crd_status(&new, established);
            new["status"]["conditions"] = conds;
        }
        if spec_part(&new) != spec_part(live) {
            let g = md(live)["generation"].as_i64().unwrap_or(1);
            md_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let sub = ctx.subresource.as_deref();
        let entry = managed_entry(
            &ctx.manager,
            operation,
            &res.api_version(),
            fields_v1(sent, on_status),
            sub,
        );
        record_manager(&mut new, entry);
        // A write that changes nothing keeps the resourceVersion, as the real server does.
        if content(&new) == content(live) && md(&new)["managedFields"] == md(live)["managedFields"] {
            return Ok(Self::present(res, live));
        }
        if ctx.dry_run {
            return Ok(Self::present(res, &new));
        }
        let rv = self.next_rv();
        md_mut(&mut new).insert("resourceVersion".into(), json!(rv));
        let out = Self::present(res, &new);
        self.put(Self::key(res, &ns, &name), new, "MODIFIED");
        Ok(out)
    }

    pub(super) fn live(&self, res: &Res, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(res, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    /// PUT.
    pub fn replace(&mut self, res: &Res, ns: &str, name: &str, mut body: Value, ctx: &Ctx) -> Result<Value, ApiError> {
        Self::check_identity(res, &mut body, ns, Some(name))?;
        let live = self.live(res, ns, name)?;
        let sent = body.clone();
        self.commit_update(res, &Self::present(res, &live), body, ctx, "Update", &sent)
    }

    /// PATCH with a merge, strategic-merge (treated as merge) or JSON patch.
    pub fn patch(
        &mut self,
        res: &Res,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        ctx: &Ctx,
    ) -> Result<Value, ApiError> {
        let live = Self::present(res, &self.live(res, ns, name)?);
        let (new, sent) = match kind {
            PatchKind::Merge => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "the body of the merge patch must be a JSON object",
                    ));
                }
                let mut t = live.clone();
                merge_patch(&mut t, &body);
                (t, body)
            }
            PatchKind::Json => {
                let t = json_patch(&live, &body).map_err(|e| ApiError::new(422, "Invalid", e))?;
                let sent = t.clone();
                (t, sent)
            }
        };
        self.commit_update(res, &live, new, ctx, "Update", &sent)
    }

    /// A write through the scale subresource: sets the parent's `spec.replicas`. A given
    /// `resource_version` is a precondition, as the Scale's own resourceVersion is.
    pub fn set_replicas(
        &mut self,
        res: &Res,
        ns: &str,
        name: &str,
        replicas: i64,
        resource_version: Option<&str>,
        ctx: &Ctx,
    ) -> Result<Value, ApiError> {
        let live = Self::present(res, &self.live(res, ns, name)?);
        let mut new = live.clone();
        if !new["spec"].is_object() {
            new["spec"] = json!({});
        }
        new["spec"]["replicas"] = json!(replicas);
        if let Some(rv) = resource_version {
            md_mut(&mut new).insert("resourceVersion".into(), json!(rv));
        }
        let sent = json!({"spec": {"replicas": replicas}});
        self.commit_update(res, &live, new, ctx, "Update", &sent)
    }

    /// Server-side apply, approximated: create if absent, else merge the applied object into the
    /// live one. Without `force`, a changed field listed in another manager's entry is a conflict.
    pub fn apply(
        &mut self,
        res: &Res,
        ns: &str,
        name: &str,
        mut body: Value,
        ctx: &Ctx,
        force: bool,
    ) -> Result<Value, ApiError> {
        Self::check_identity(res, &mut body, ns, Some(name))?;
        let live = self
            .objects
            .get(&Self::key(res, ns, name))
            .map(|l| Self::present(res, l));
        let rv = md(&body)["resourceVersion"].as_str().map(str::to_string);
        {
            let m = md_mut(&mut body);
            for k in [
                "uid",
                "creationTimestamp",
                "managedFields",
                "generation",
                "resourceVersion",
            ] {
                m.remove(k);
            }
        }
        let Some(live) = live else {
            if ctx.on_status() {
                return Err(ApiError::not_found(&res.group, &res.plural, name));
            }
            return self.create(res, ns, body, ctx, "Apply");
        };
        if rv.is_some_and(|rv| Some(rv.as_str()) != md(&live)["resourceVersion"].as_str()) {
            return Err(ApiError::conflict(&res.group, &res.plural, name));
        }
        if !force {
            Self::apply_conflicts(res, &live, &body, ctx)?;
        }
        let mut new = live.clone();
        merge_patch(&mut new, &body);
        self.commit_update(res, &live, new, ctx, "Apply", &body)
    }

    pub(super) fn apply_conflicts(res: &Res, live: &Value, body: &Value, ctx: &Ctx) -> Result<(), ApiError> {
        let mut mine = Vec::new();
        leaf_paths(&fields_v1(body, ctx.on_status()), "", &mut mine);
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for entry in md(live)["managedFields"].as_array().into_iter().flatten() {
            let mgr = entry["manager"].as_str().unwrap_or_default();
            if mgr == ctx.manager {
                continue;
            }
            let mut theirs = Vec::new();
            leaf_paths(&entry["fieldsV1"], "", &mut theirs);
            for p in mine.iter().filter(|p| !p.is_empty() && theirs.contains(p)) {
                if value_at(body, p) != value_at(live, p) {
                    conflicts.push((mgr.to_string(), p.clone()));
                }
            }
        }
        if conflicts.is_empty() {
            return Ok(());
        }
        let n = conflicts.len();
        let list: Vec<String> = conflicts
            .iter()
            .map(|(m, p)| format!("conflict with {m:?}: {p}"))
            .collect();
        let plural = if n == 1 { "" } else { "s" };
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!("Apply failed with {n} conflict{plural}: {}", list.join(", ")),
        );
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?}"), "field": p}))
            .collect();
        e.details = Some(json!({"name": name_of(live), "group": res.group, "kind": res.plural, "causes": causes}));
        Err(e)
    }

    /// DELETE of one object; namespaces take their objects with them, CRDs their custom resources.
    pub fn delete(&mut self, res: &Res, ns: &str, name: &str, dry_run: bool) -> Result<Value, ApiError> {
        let key = Self::key(res, ns, name);
        let mut live = self
            .objects
            .get(&key)
            .map(|o| Self::present(res, o))
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
        if res.is_namespace() {
            md_mut(&mut live).insert("deletionTimestamp".into(), json!(now_rfc3339()));
            live["status"] = json!({"phase": "Terminating"});
        }
        if dry_run {
            return Ok(live);
        }
        let name = name.to_string();
        let group = live["spec"]["group"].as_str().unwrap_or_default().to_string();
        let plural = live["spec"]["names"]["plural"].as_str().unwrap_or_default().to_string();
        let (is_ns, is_crd) = (res.is_namespace(), res.is_crd());
        self.remove_where(|k| *k == key || (is_ns && k.2 == name) || (is_crd && k.0 == group && k.1 == plural));
        if is_crd {
            self.pending.retain(|(n, _)| *n != name);
        }
        Ok(live)
    }

    /// DELETE on a collection: every matching object, returned as a list.
    pub fn delete_collection(
        &mut self,
        res: &Res,
        ns: Option<&str>,
        q: &ListQuery,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let list = self.list(res, ns, q);
        for item in list["items"].as_array().into_iter().flatten() {
            let ns = md(item)["namespace"].as_str().unwrap_or("");
            self.delete(res, ns, name_of(item), dry_run)?;
        }
        Ok(list)
    }

    /// Stores a fixture object as given (status and all), through the same validation.
    pub fn seed(&mut self, obj: Value) -> anyhow::Result<()> {
        let av = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let name = name_of(&obj).to_string();
        let res = self.resolve_kind(&av, &kind).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot seed {kind} {name:?}: unknown kind {av}/{kind} (seed its CustomResourceDefinition first)"
            )
        })?;
        let ns = md(&obj)["namespace"].as_str().unwrap_or("").to_string();
        if res.namespaced && ns.is_empty() {
            anyhow::bail!("cannot seed {kind} {name:?}: it is namespaced but has no metadata.namespace");
        }
        let ctx = Ctx {
            seeding: true,
            manager: "seed".into(),
            ..Ctx::default()
        };
        self.create(&res, &ns, obj, &ctx, "Update")
            .map_err(|e| anyhow::anyhow!("cannot seed {kind} {name:?}: {}", e.message))?;
        Ok(())
    }
}
