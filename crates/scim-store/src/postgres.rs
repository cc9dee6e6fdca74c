//! The PostgreSQL store.

use crate::{Limits, Result, StoreError};

/// The PostgreSQL store.
pub struct PgStore;

impl PgStore {
    /// Connects to `url`, creating and migrating the schema as needed.
    pub fn open(_url: &str, _limits: Limits) -> Result<Self> {
        Err(StoreError::Backend("PostgreSQL support is being written".into()))
    }
}
