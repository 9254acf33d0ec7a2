//! mysql engine (stub, being implemented).

use super::database::{Connection, DbError, DumpOptions, DumpSession, RestoreReport, RestoreRequest};

pub async fn dump(_conn: &Connection, _opts: &DumpOptions) -> Result<DumpSession, DbError> {
    todo!()
}

pub async fn restore(_conn: &Connection, _req: RestoreRequest) -> Result<RestoreReport, DbError> {
    todo!()
}
