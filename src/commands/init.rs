//! `kfguard init`: create an encrypted repository.

use serde::Serialize;

use super::Context;
use crate::output::emit;
use crate::repo;
use crate::{Outcome, Usage};

#[derive(Serialize)]
struct Initialised {
    repository: String,
    id: String,
}

pub(super) fn run(ctx: &Context) -> anyhow::Result<Outcome> {
    let password = repo::password(&ctx.config.repository)
        .map_err(|e| Usage::mark_if(e, repo::RepoError::is_usage))?;
    let location = ctx.location()?;
    let repo = location.init(&password, ctx.global.quiet)?;
    let result = Initialised {
        repository: location.display.clone(),
        id: crate::snapshot::full_id(&repo.config().id),
    };
    tracing::info!(repository = %result.repository, id = %result.id, "repository created");
    emit(ctx.global.output, &result, |r| {
        format!(
            "created repository {} at {}\nKeep the password safe: without it the backups cannot be read.",
            r.id, r.repository
        )
    });
    Ok(Outcome::Ok)
}
