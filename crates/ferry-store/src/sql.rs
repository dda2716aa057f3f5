//! Pieces shared by the SQL registries: embedded migrations, value conversions, error
//! mapping, and the one `Registry` implementation both backends expand (their SQL is the
//! same text: `$N` bind parameters work in SQLite and PostgreSQL alike).

use crate::StoreError;
use ferry_core::api::Outcome;
use ferry_core::{Component, DeviceId, Version};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// One embedded migration: version, description, SQL text.
type Embedded = (i64, &'static str, &'static str);

/// SQLite migrations, embedded at compile time (`migrations/sqlite/`).
pub(crate) const SQLITE_MIGRATIONS: &[Embedded] = &[
    (1, "initial", include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, "deltas", include_str!("../migrations/sqlite/0002_deltas.sql")),
    (3, "alerts", include_str!("../migrations/sqlite/0003_alerts.sql")),
    (4, "firmware", include_str!("../migrations/sqlite/0004_firmware.sql")),
    (5, "rollouts", include_str!("../migrations/sqlite/0005_rollouts.sql")),
];

/// PostgreSQL migrations, embedded at compile time (`migrations/postgres/`).
pub(crate) const POSTGRES_MIGRATIONS: &[Embedded] = &[
    (1, "initial", include_str!("../migrations/postgres/0001_initial.sql")),
    (2, "deltas", include_str!("../migrations/postgres/0002_deltas.sql")),
    (3, "alerts", include_str!("../migrations/postgres/0003_alerts.sql")),
    (4, "firmware", include_str!("../migrations/postgres/0004_firmware.sql")),
    (5, "rollouts", include_str!("../migrations/postgres/0005_rollouts.sql")),
];

/// A sqlx migrator over embedded migrations (independent of the working directory).
pub(crate) fn migrator(migrations: &[Embedded]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// A failed query: logged with the operation and object, returned as [`StoreError::Database`].
pub(crate) fn db_err(backend: &'static str, operation: &str, source: sqlx::Error) -> StoreError {
    tracing::error!(backend, operation, error = %source, "registry query failed");
    StoreError::Database { backend, source }
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Whether a database error is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// A `u64` as the signed 64-bit integer both databases store.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Config(format!(
            "{what} = {value} does not fit the registry's 63-bit integer columns; pass a value up to {}",
            i64::MAX
        ))
    })
}

/// A stored integer back as `u64`.
pub(crate) fn to_u64(backend: &str, value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "{backend} registry: {what} is negative ({value}); the row was not written by Ferry"
        ))
    })
}

/// A stored chunk size back as `u32`.
pub(crate) fn to_u32(backend: &str, value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{backend} registry: {what} = {value} is outside 0..=4294967295")))
}

/// A stored version text back as a [`Version`].
pub(crate) fn parse_version(backend: &str, text: &str, what: &str) -> Result<Version, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("{backend} registry: {what}: {e}")))
}

/// A stored device id back as a [`DeviceId`].
pub(crate) fn parse_device(backend: &str, text: &str, what: &str) -> Result<DeviceId, StoreError> {
    DeviceId::new(text).map_err(|e| StoreError::Corrupt(format!("{backend} registry: {what}: {e}")))
}

/// A stored component name back as a [`Component`].
pub(crate) fn parse_component(backend: &str, text: &str, what: &str) -> Result<Component, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("{backend} registry: {what}: {e}")))
}

/// An outcome as stored text.
pub(crate) fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    }
}

/// Stored outcome text back as an [`Outcome`].
pub(crate) fn parse_outcome(backend: &str, text: &str, what: &str) -> Result<Outcome, StoreError> {
    match text {
        "success" => Ok(Outcome::Success),
        "failure" => Ok(Outcome::Failure),
        other => Err(StoreError::Corrupt(format!(
            "{backend} registry: {what}: outcome '{other}' is neither 'success' nor 'failure'"
        ))),
    }
}

/// A list of strings as JSON text.
pub(crate) fn strings_to_json(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// JSON text back as a list of strings.
pub(crate) fn strings_from_json(backend: &str, text: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{backend} registry: {what} is not a JSON list of strings: {e}")))
}

/// Devices sorted and without duplicates: every writer inserts blacklist rows in the same
/// order, so concurrent transactions cannot deadlock on each other's index entries.
pub(crate) fn sorted_unique(devices: &[DeviceId]) -> Vec<&DeviceId> {
    let mut v: Vec<&DeviceId> = devices.iter().collect();
    v.sort();
    v.dedup();
    v
}

/// Expands `impl Registry for $ty` over a `self.pool: sqlx::Pool<$db>`. The type provides
/// `const BACKEND: &'static str` and `async fn begin(&self) -> Result<Transaction<'static, $db>, StoreError>`.
macro_rules! sql_registry {
    ($ty:ty, $db:ty) => {
        impl $ty {
            fn device_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ferry_core::api::DeviceRecord, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode device row", e);
                let id: String = row.try_get("device_id").map_err(get)?;
                let upgrader: Option<String> = row.try_get("upgrader_version").map_err(get)?;
                let main: Option<String> = row.try_get("main_version").map_err(get)?;
                let last_seen: Option<i64> = row.try_get("last_seen").map_err(get)?;
                let what = format!("device '{id}'");
                Ok(ferry_core::api::DeviceRecord {
                    device_id: crate::sql::parse_device(b, &id, &what)?,
                    device_type: row.try_get("device_type").map_err(get)?,
                    group: row.try_get("group_name").map_err(get)?,
                    upgrader_version: upgrader
                        .map(|v| crate::sql::parse_version(b, &v, &format!("{what} upgrader version")))
                        .transpose()?,
                    main_version: main.map(|v| crate::sql::parse_version(b, &v, &format!("{what} main version"))).transpose()?,
                    last_seen: last_seen.map(|t| crate::sql::to_u64(b, t, &format!("{what} last_seen"))).transpose()?,
                })
            }

            /// A release row; its blacklist is filled in by the caller.
            fn release_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ferry_core::api::ReleaseRecord, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode release row", e);
                let component: String = row.try_get("component").map_err(get)?;
                let version: String = row.try_get("version").map_err(get)?;
                let what = format!("release {component} {version}");
                let device_types: String = row.try_get("device_types").map_err(get)?;
                let go_live: Option<i64> = row.try_get("go_live").map_err(get)?;
                Ok(ferry_core::api::ReleaseRecord {
                    component: crate::sql::parse_component(b, &component, &what)?,
                    version: crate::sql::parse_version(b, &version, &what)?,
                    device_types: crate::sql::strings_from_json(b, &device_types, &format!("{what} device types"))?,
                    target_name: row.try_get("target_name").map_err(get)?,
                    length: crate::sql::to_u64(b, row.try_get("length").map_err(get)?, &format!("{what} length"))?,
                    sha256: row.try_get("sha256").map_err(get)?,
                    blacklist: Vec::new(),
                    go_live: go_live.map(|t| crate::sql::to_u64(b, t, &format!("{what} go_live"))).transpose()?,
                    created_at: crate::sql::to_u64(b, row.try_get("created_at").map_err(get)?, &format!("{what} created_at"))?,
                    deltas: Vec::new(),
                    halted: None,
                })
            }

            /// Halts of one release, or of every release when `release` is `None`, keyed by
            /// (component, version) text.
            async fn halts_of(
                &self,
                release: Option<(&str, &str)>,
            ) -> Result<std::collections::HashMap<(String, String), ferry_core::api::ReleaseHalt>, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let rows = match release {
                    Some((component, version)) => sqlx::query(
                        "SELECT component, version, alert_id, since FROM release_halts \
                         WHERE component = $1 AND version = $2",
                    )
                    .bind(component)
                    .bind(version)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("read halt of release {component} {version}"), e))?,
                    None => sqlx::query("SELECT component, version, alert_id, since FROM release_halts")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| crate::sql::db_err(b, "list release halts", e))?,
                };
                let mut out = std::collections::HashMap::new();
                for row in &rows {
                    let get = |e: sqlx::Error| crate::sql::db_err(b, "decode release halt row", e);
                    let component: String = row.try_get("component").map_err(get)?;
                    let version: String = row.try_get("version").map_err(get)?;
                    let since: i64 = row.try_get("since").map_err(get)?;
                    let halt = ferry_core::api::ReleaseHalt {
                        alert_id: row.try_get("alert_id").map_err(get)?,
                        since: crate::sql::to_u64(b, since, &format!("halt of release {component} {version}"))?,
                    };
                    out.insert((component, version), halt);
                }
                Ok(out)
            }

            fn alert_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ferry_core::api::ArchivedAlert, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode alert row", e);
                let id: i64 = row.try_get("id").map_err(get)?;
                let what = format!("alert {id}");
                let device: String = row.try_get("device_id").map_err(get)?;
                let component: String = row.try_get("component").map_err(get)?;
                let version: String = row.try_get("version").map_err(get)?;
                let findings: String = row.try_get("findings").map_err(get)?;
                let evidence: String = row.try_get("evidence").map_err(get)?;
                let corrupt = |field: &str, e: serde_json::Error| {
                    StoreError::Corrupt(format!("{b} registry: {what}: {field} are not valid JSON: {e}"))
                };
                Ok(ferry_core::api::ArchivedAlert {
                    id,
                    received_at: crate::sql::to_u64(b, row.try_get("received_at").map_err(get)?, &format!("{what} received_at"))?,
                    alert: ferry_core::api::SecurityAlert {
                        device_id: crate::sql::parse_device(b, &device, &what)?,
                        component: crate::sql::parse_component(b, &component, &what)?,
                        version: crate::sql::parse_version(b, &version, &what)?,
                        stage: row.try_get("stage").map_err(get)?,
                        findings: serde_json::from_str(&findings).map_err(|e| corrupt("findings", e))?,
                        evidence: serde_json::from_str(&evidence).map_err(|e| corrupt("evidence", e))?,
                        detected_at: crate::sql::to_u64(b, row.try_get("detected_at").map_err(get)?, &format!("{what} detected_at"))?,
                    },
                    message: row.try_get("message").map_err(get)?,
                })
            }

            /// The `content` column of the row `sql` selects by key `$1` (TUF metadata, firmware).
            async fn blob(&self, sql: &'static str, key: &str, what: &str) -> Result<Option<Vec<u8>>, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let row = sqlx::query(sql)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("read {what}"), e))?;
                row.map(|r| r.try_get::<Vec<u8>, _>("content"))
                    .transpose()
                    .map_err(|e| crate::sql::db_err(b, &format!("decode {what}"), e))
            }

            /// Every `(key, content)` pair `sql` selects.
            async fn blobs(&self, sql: &'static str, what: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let rows = sqlx::query(sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("list {what}"), e))?;
                rows.iter()
                    .map(|r| Ok((r.try_get("key")?, r.try_get("content")?)))
                    .collect::<Result<Vec<(String, Vec<u8>)>, sqlx::Error>>()
                    .map_err(|e| crate::sql::db_err(b, &format!("decode {what}"), e))
            }

            fn rollout_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ferry_core::rollout::RolloutRecord, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode rollout row", e);
                let component: String = row.try_get("component").map_err(get)?;
                let version: String = row.try_get("version").map_err(get)?;
                let what = format!("rollout of {component} {version}");
                let plan: String = row.try_get("plan").map_err(get)?;
                let halted_reason: Option<String> = row.try_get("halted_reason").map_err(get)?;
                let halted_at: Option<i64> = row.try_get("halted_at").map_err(get)?;
                let halted = match (halted_reason, halted_at) {
                    (Some(reason), Some(at)) => Some(ferry_core::rollout::RolloutHalt {
                        reason,
                        since: crate::sql::to_u64(b, at, &format!("{what} halted_at"))?,
                    }),
                    _ => None,
                };
                Ok(ferry_core::rollout::RolloutRecord {
                    component: crate::sql::parse_component(b, &component, &what)?,
                    version: crate::sql::parse_version(b, &version, &what)?,
                    plan: serde_json::from_str(&plan)
                        .map_err(|e| StoreError::Corrupt(format!("{b} registry: {what}: plan is not a valid rollout plan: {e}")))?,
                    created_at: crate::sql::to_u64(b, row.try_get("created_at").map_err(get)?, &format!("{what} created_at"))?,
                    halted,
                })
            }

            fn delta_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ferry_core::api::DeltaRecord, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode delta row", e);
                let component: String = row.try_get("component").map_err(get)?;
                let to: String = row.try_get("to_version").map_err(get)?;
                let from: String = row.try_get("from_version").map_err(get)?;
                let what = format!("delta {component} {from} -> {to}");
                Ok(ferry_core::api::DeltaRecord {
                    component: crate::sql::parse_component(b, &component, &what)?,
                    from_version: crate::sql::parse_version(b, &from, &what)?,
                    to_version: crate::sql::parse_version(b, &to, &what)?,
                    target_name: row.try_get("target_name").map_err(get)?,
                    length: crate::sql::to_u64(b, row.try_get("length").map_err(get)?, &format!("{what} length"))?,
                    sha256: row.try_get("sha256").map_err(get)?,
                    created_at: crate::sql::to_u64(b, row.try_get("created_at").map_err(get)?, &format!("{what} created_at"))?,
                })
            }

            fn delta_failure_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<ferry_core::api::DeltaFailureRecord, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode delta-failure row", e);
                let device: String = row.try_get("device_id").map_err(get)?;
                let component: String = row.try_get("component").map_err(get)?;
                let what = format!("delta-failure record of device '{device}' for {component}");
                let from: String = row.try_get("from_version").map_err(get)?;
                let to: String = row.try_get("to_version").map_err(get)?;
                let files: String = row.try_get("files").map_err(get)?;
                Ok(ferry_core::api::DeltaFailureRecord {
                    device_id: crate::sql::parse_device(b, &device, &what)?,
                    component: crate::sql::parse_component(b, &component, &what)?,
                    from_version: crate::sql::parse_version(b, &from, &what)?,
                    to_version: crate::sql::parse_version(b, &to, &what)?,
                    target_name: row.try_get("target_name").map_err(get)?,
                    state: row.try_get("state").map_err(get)?,
                    reason: row.try_get("reason").map_err(get)?,
                    files: serde_json::from_str(&files).map_err(|e| {
                        StoreError::Corrupt(format!("{b} registry: {what}: files are not a JSON list of mismatches: {e}"))
                    })?,
                    failed_at: crate::sql::to_u64(b, row.try_get("failed_at").map_err(get)?, &format!("{what} failed_at"))?,
                })
            }

            /// The deltas of one release, or of every release when `release` is `None`.
            async fn deltas_of(
                &self,
                release: Option<(&str, &str)>,
            ) -> Result<Vec<ferry_core::api::DeltaRecord>, StoreError> {
                let b = Self::BACKEND;
                let rows = match release {
                    Some((component, version)) => sqlx::query(
                        "SELECT component, to_version, from_version, target_name, length, sha256, created_at \
                         FROM release_deltas WHERE component = $1 AND to_version = $2 ORDER BY from_version",
                    )
                    .bind(component)
                    .bind(version)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("list deltas of release {component} {version}"), e))?,
                    None => sqlx::query(
                        "SELECT component, to_version, from_version, target_name, length, sha256, created_at \
                         FROM release_deltas ORDER BY component, to_version, from_version",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, "list deltas", e))?,
                };
                rows.iter().map(Self::delta_from_row).collect()
            }

            fn report_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ferry_core::api::ArchivedReport, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode report row", e);
                let id: i64 = row.try_get("id").map_err(get)?;
                let what = format!("report {id}");
                let device: String = row.try_get("device_id").map_err(get)?;
                let component: String = row.try_get("component").map_err(get)?;
                let from: String = row.try_get("from_version").map_err(get)?;
                let to: String = row.try_get("to_version").map_err(get)?;
                let outcome: String = row.try_get("outcome").map_err(get)?;
                let log_tail: String = row.try_get("log_tail").map_err(get)?;
                Ok(ferry_core::api::ArchivedReport {
                    id,
                    received_at: crate::sql::to_u64(b, row.try_get("received_at").map_err(get)?, &format!("{what} received_at"))?,
                    report: ferry_core::api::UpgradeReport {
                        device_id: crate::sql::parse_device(b, &device, &what)?,
                        component: crate::sql::parse_component(b, &component, &what)?,
                        from_version: crate::sql::parse_version(b, &from, &format!("{what} from_version"))?,
                        to_version: crate::sql::parse_version(b, &to, &format!("{what} to_version"))?,
                        outcome: crate::sql::parse_outcome(b, &outcome, &what)?,
                        reason: row.try_get("reason").map_err(get)?,
                        log_tail: crate::sql::strings_from_json(b, &log_tail, &format!("{what} log_tail"))?,
                        bytes_downloaded: crate::sql::to_u64(
                            b,
                            row.try_get("bytes_downloaded").map_err(get)?,
                            &format!("{what} bytes_downloaded"),
                        )?,
                        rolled_back: row.try_get("rolled_back").map_err(get)?,
                    },
                })
            }

            fn backup_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ferry_core::api::BackupRecord, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let get = |e: sqlx::Error| crate::sql::db_err(b, "decode backup row", e);
                let device: String = row.try_get("device_id").map_err(get)?;
                let component: String = row.try_get("component").map_err(get)?;
                let version: String = row.try_get("version").map_err(get)?;
                let what = format!("backup {device}/{component}/{version}");
                Ok(ferry_core::api::BackupRecord {
                    device_id: crate::sql::parse_device(b, &device, &what)?,
                    component: crate::sql::parse_component(b, &component, &what)?,
                    version: crate::sql::parse_version(b, &version, &what)?,
                    length: crate::sql::to_u64(b, row.try_get("length").map_err(get)?, &format!("{what} length"))?,
                    sha256: row.try_get("sha256").map_err(get)?,
                    created_at: crate::sql::to_u64(b, row.try_get("created_at").map_err(get)?, &format!("{what} created_at"))?,
                })
            }

            /// The blacklist of one release, sorted by device id.
            async fn blacklist_of(&self, component: &str, version: &str) -> Result<Vec<ferry_core::DeviceId>, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let rows = sqlx::query(
                    "SELECT device_id FROM release_blacklist WHERE component = $1 AND version = $2 ORDER BY device_id",
                )
                .bind(component)
                .bind(version)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("read blacklist of release {component} {version}"), e))?;
                let what = format!("blacklist of release {component} {version}");
                rows.iter()
                    .map(|r| {
                        let id: String = r.try_get("device_id").map_err(|e| crate::sql::db_err(b, &what, e))?;
                        crate::sql::parse_device(b, &id, &what)
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl crate::registry::Registry for $ty {
            async fn enroll_device(
                &self,
                id: &ferry_core::DeviceId,
                device_type: &str,
                token_sha256: &str,
                now: u64,
            ) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                sqlx::query(
                    "INSERT INTO devices (device_id, device_type, token_sha256, group_name, enrolled_at) \
                     VALUES ($1, $2, $3, 'default', $4) \
                     ON CONFLICT (device_id) DO UPDATE SET device_type = excluded.device_type, token_sha256 = excluded.token_sha256",
                )
                .bind(id.as_str())
                .bind(device_type)
                .bind(token_sha256)
                .bind(crate::sql::to_i64(now, "enrollment time")?)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if crate::sql::is_unique_violation(&e) {
                        StoreError::Conflict(format!(
                            "device token hash presented for '{id}' (assigned to another device in the {b} registry; \
                             enroll with a freshly generated token)"
                        ))
                    } else {
                        crate::sql::db_err(b, &format!("enroll device '{id}'"), e)
                    }
                })?;
                Ok(())
            }

            async fn device_by_token(&self, token_sha256: &str) -> Result<Option<ferry_core::DeviceId>, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let row = sqlx::query("SELECT device_id FROM devices WHERE token_sha256 = $1")
                    .bind(token_sha256)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, "look up device by token hash", e))?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let id: String = row.try_get("device_id").map_err(|e| crate::sql::db_err(b, "decode device id", e))?;
                        Ok(Some(crate::sql::parse_device(b, &id, "device found by token")?))
                    }
                }
            }

            async fn record_checkin(
                &self,
                id: &ferry_core::DeviceId,
                device_type: &str,
                upgrader: &ferry_core::Version,
                main: &ferry_core::Version,
                now: u64,
            ) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                let done = sqlx::query(
                    "UPDATE devices SET device_type = $2, upgrader_version = $3, main_version = $4, last_seen = $5 \
                     WHERE device_id = $1",
                )
                .bind(id.as_str())
                .bind(device_type)
                .bind(upgrader.to_string())
                .bind(main.to_string())
                .bind(crate::sql::to_i64(now, "check-in time")?)
                .execute(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("record check-in of device '{id}'"), e))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("device '{id}' (not enrolled) in the {b} registry")));
                }
                Ok(())
            }

            async fn device(&self, id: &ferry_core::DeviceId) -> Result<Option<ferry_core::api::DeviceRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT device_id, device_type, group_name, upgrader_version, main_version, last_seen \
                     FROM devices WHERE device_id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, &format!("read device '{id}'"), e))?;
                row.as_ref().map(Self::device_from_row).transpose()
            }

            async fn devices(&self) -> Result<Vec<ferry_core::api::DeviceRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT device_id, device_type, group_name, upgrader_version, main_version, last_seen \
                     FROM devices ORDER BY device_id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, "list devices", e))?;
                rows.iter().map(Self::device_from_row).collect()
            }

            async fn set_device_group(&self, id: &ferry_core::DeviceId, group: &str) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                let done = sqlx::query("UPDATE devices SET group_name = $2 WHERE device_id = $1")
                    .bind(id.as_str())
                    .bind(group)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("move device '{id}' to group '{group}'"), e))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("device '{id}' (not enrolled) in the {b} registry")));
                }
                Ok(())
            }

            async fn set_group_chunk_size(&self, group: &str, chunk_size: u32) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO device_groups (group_name, chunk_size) VALUES ($1, $2) \
                     ON CONFLICT (group_name) DO UPDATE SET chunk_size = excluded.chunk_size",
                )
                .bind(group)
                .bind(i64::from(chunk_size))
                .execute(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, &format!("set chunk size of group '{group}'"), e))?;
                Ok(())
            }

            async fn group_chunk_size(&self, group: &str) -> Result<Option<u32>, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let row = sqlx::query("SELECT chunk_size FROM device_groups WHERE group_name = $1")
                    .bind(group)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("read chunk size of group '{group}'"), e))?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let size: i64 = row.try_get("chunk_size").map_err(|e| crate::sql::db_err(b, "decode chunk size", e))?;
                        Ok(Some(crate::sql::to_u32(b, size, &format!("chunk size of group '{group}'"))?))
                    }
                }
            }

            async fn put_release(&self, release: &ferry_core::api::ReleaseRecord) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                let component = release.component.as_str();
                let version = release.version.to_string();
                let what = format!("release {component} {version}");
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "INSERT INTO releases (component, version, device_types, target_name, length, sha256, go_live, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (component, version) DO NOTHING",
                )
                .bind(component)
                .bind(&version)
                .bind(crate::sql::strings_to_json(&release.device_types))
                .bind(&release.target_name)
                .bind(crate::sql::to_i64(release.length, &format!("{what} length"))?)
                .bind(&release.sha256)
                .bind(release.go_live.map(|t| crate::sql::to_i64(t, &format!("{what} go_live"))).transpose()?)
                .bind(crate::sql::to_i64(release.created_at, &format!("{what} created_at"))?)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("add {what}"), e))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("{what} in the {b} registry")));
                }
                for device in crate::sql::sorted_unique(&release.blacklist) {
                    sqlx::query(
                        "INSERT INTO release_blacklist (component, version, device_id) VALUES ($1, $2, $3) \
                         ON CONFLICT (component, version, device_id) DO NOTHING",
                    )
                    .bind(component)
                    .bind(&version)
                    .bind(device.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("blacklist device '{device}' for {what}"), e))?;
                }
                tx.commit().await.map_err(|e| crate::sql::db_err(b, &format!("commit {what}"), e))?;
                Ok(())
            }

            async fn releases(&self) -> Result<Vec<ferry_core::api::ReleaseRecord>, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let rows = sqlx::query(
                    "SELECT component, version, device_types, target_name, length, sha256, go_live, created_at \
                     FROM releases ORDER BY component, created_at, seq",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, "list releases", e))?;
                let mut releases = rows.iter().map(Self::release_from_row).collect::<Result<Vec<_>, _>>()?;
                let entries = sqlx::query(
                    "SELECT component, version, device_id FROM release_blacklist ORDER BY component, version, device_id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, "list blacklists", e))?;
                let mut blacklists: std::collections::HashMap<(String, String), Vec<ferry_core::DeviceId>> =
                    std::collections::HashMap::new();
                for entry in &entries {
                    let get = |e: sqlx::Error| crate::sql::db_err(b, "decode blacklist row", e);
                    let component: String = entry.try_get("component").map_err(get)?;
                    let version: String = entry.try_get("version").map_err(get)?;
                    let device: String = entry.try_get("device_id").map_err(get)?;
                    let device =
                        crate::sql::parse_device(b, &device, &format!("blacklist of release {component} {version}"))?;
                    blacklists.entry((component, version)).or_default().push(device);
                }
                for release in &mut releases {
                    let key = (release.component.as_str().to_string(), release.version.to_string());
                    if let Some(list) = blacklists.remove(&key) {
                        release.blacklist = list;
                    }
                }
                let mut halts = self.halts_of(None).await?;
                for release in &mut releases {
                    let key = (release.component.as_str().to_string(), release.version.to_string());
                    release.halted = halts.remove(&key);
                }
                for delta in self.deltas_of(None).await? {
                    if let Some(release) = releases
                        .iter_mut()
                        .find(|r| r.component == delta.component && r.version == delta.to_version)
                    {
                        release.deltas.push(delta);
                    }
                }
                Ok(releases)
            }

            async fn release(
                &self,
                component: ferry_core::Component,
                version: &ferry_core::Version,
            ) -> Result<Option<ferry_core::api::ReleaseRecord>, StoreError> {
                let b = Self::BACKEND;
                let version_text = version.to_string();
                let row = sqlx::query(
                    "SELECT component, version, device_types, target_name, length, sha256, go_live, created_at \
                     FROM releases WHERE component = $1 AND version = $2",
                )
                .bind(component.as_str())
                .bind(&version_text)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("read release {component} {version}"), e))?;
                let Some(row) = row else { return Ok(None) };
                let mut release = Self::release_from_row(&row)?;
                release.blacklist = self.blacklist_of(component.as_str(), &version_text).await?;
                release.deltas = self.deltas_of(Some((component.as_str(), &version_text))).await?;
                release.halted = self
                    .halts_of(Some((component.as_str(), &version_text)))
                    .await?
                    .into_values()
                    .next();
                Ok(Some(release))
            }

            async fn add_to_blacklist(
                &self,
                component: ferry_core::Component,
                version: &ferry_core::Version,
                devices: &[ferry_core::DeviceId],
            ) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                let version_text = version.to_string();
                let what = format!("release {component} {version}");
                let not_found = || StoreError::NotFound(format!("{what} in the {b} registry"));
                let mut tx = self.begin().await?;
                let exists = sqlx::query("SELECT 1 AS one FROM releases WHERE component = $1 AND version = $2")
                    .bind(component.as_str())
                    .bind(&version_text)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("find {what}"), e))?;
                if exists.is_none() {
                    return Err(not_found());
                }
                for device in crate::sql::sorted_unique(devices) {
                    sqlx::query(
                        "INSERT INTO release_blacklist (component, version, device_id) VALUES ($1, $2, $3) \
                         ON CONFLICT (component, version, device_id) DO NOTHING",
                    )
                    .bind(component.as_str())
                    .bind(&version_text)
                    .bind(device.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if crate::sql::is_foreign_key_violation(&e) {
                            not_found()
                        } else {
                            crate::sql::db_err(b, &format!("blacklist device '{device}' for {what}"), e)
                        }
                    })?;
                }
                tx.commit().await.map_err(|e| crate::sql::db_err(b, &format!("commit blacklist of {what}"), e))?;
                Ok(())
            }

            async fn add_report(&self, report: &ferry_core::api::UpgradeReport, now: u64) -> Result<i64, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let device = &report.device_id;
                let row = sqlx::query(
                    "INSERT INTO reports (received_at, device_id, component, from_version, to_version, outcome, reason, \
                     log_tail, bytes_downloaded, rolled_back) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                )
                .bind(crate::sql::to_i64(now, "report receipt time")?)
                .bind(device.as_str())
                .bind(report.component.as_str())
                .bind(report.from_version.to_string())
                .bind(report.to_version.to_string())
                .bind(crate::sql::outcome_text(report.outcome))
                .bind(&report.reason)
                .bind(crate::sql::strings_to_json(&report.log_tail))
                .bind(crate::sql::to_i64(report.bytes_downloaded, "report bytes_downloaded")?)
                .bind(report.rolled_back)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("archive report of device '{device}'"), e))?;
                row.try_get::<i64, _>("id").map_err(|e| crate::sql::db_err(b, "decode new report id", e))
            }

            async fn reports(
                &self,
                device: Option<&ferry_core::DeviceId>,
                limit: u32,
            ) -> Result<Vec<ferry_core::api::ArchivedReport>, StoreError> {
                let b = Self::BACKEND;
                let rows = match device {
                    Some(device) => sqlx::query(
                        "SELECT id, received_at, device_id, component, from_version, to_version, outcome, reason, \
                         log_tail, bytes_downloaded, rolled_back FROM reports WHERE device_id = $1 \
                         ORDER BY received_at DESC, id DESC LIMIT $2",
                    )
                    .bind(device.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("list reports of device '{device}'"), e))?,
                    None => sqlx::query(
                        "SELECT id, received_at, device_id, component, from_version, to_version, outcome, reason, \
                         log_tail, bytes_downloaded, rolled_back FROM reports \
                         ORDER BY received_at DESC, id DESC LIMIT $1",
                    )
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_err(b, "list reports", e))?,
                };
                rows.iter().map(Self::report_from_row).collect()
            }

            async fn add_backup(&self, backup: &ferry_core::api::BackupRecord) -> Result<(), StoreError> {
                let what = format!("backup {}/{}/{}", backup.device_id, backup.component, backup.version);
                sqlx::query(
                    "INSERT INTO backups (device_id, component, version, length, sha256, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (device_id, component, version) DO UPDATE SET \
                     length = excluded.length, sha256 = excluded.sha256, created_at = excluded.created_at",
                )
                .bind(backup.device_id.as_str())
                .bind(backup.component.as_str())
                .bind(backup.version.to_string())
                .bind(crate::sql::to_i64(backup.length, &format!("{what} length"))?)
                .bind(&backup.sha256)
                .bind(crate::sql::to_i64(backup.created_at, &format!("{what} created_at"))?)
                .execute(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, &format!("record {what}"), e))?;
                Ok(())
            }

            async fn backups(&self, device: &ferry_core::DeviceId) -> Result<Vec<ferry_core::api::BackupRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT device_id, component, version, length, sha256, created_at FROM backups \
                     WHERE device_id = $1 ORDER BY created_at DESC, component, version",
                )
                .bind(device.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, &format!("list backups of device '{device}'"), e))?;
                rows.iter().map(Self::backup_from_row).collect()
            }

            async fn put_delta(&self, delta: &ferry_core::api::DeltaRecord) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                let what = format!("delta {} {} -> {}", delta.component, delta.from_version, delta.to_version);
                sqlx::query(
                    "INSERT INTO release_deltas (component, to_version, from_version, target_name, length, sha256, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (component, to_version, from_version) DO UPDATE SET target_name = excluded.target_name, \
                     length = excluded.length, sha256 = excluded.sha256, created_at = excluded.created_at",
                )
                .bind(delta.component.as_str())
                .bind(delta.to_version.to_string())
                .bind(delta.from_version.to_string())
                .bind(&delta.target_name)
                .bind(crate::sql::to_i64(delta.length, &format!("{what} length"))?)
                .bind(&delta.sha256)
                .bind(crate::sql::to_i64(delta.created_at, &format!("{what} created_at"))?)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if crate::sql::is_foreign_key_violation(&e) {
                        StoreError::NotFound(format!(
                            "release {} {} (target of {what}) in the {b} registry",
                            delta.component, delta.to_version
                        ))
                    } else {
                        crate::sql::db_err(b, &format!("record {what}"), e)
                    }
                })?;
                Ok(())
            }

            async fn put_delta_failure(&self, record: &ferry_core::api::DeltaFailureRecord) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                let what = format!("delta-failure record of device '{}' for {}", record.device_id, record.component);
                let files = serde_json::to_string(&record.files)
                    .map_err(|e| StoreError::Config(format!("{what}: files cannot be encoded: {e}")))?;
                sqlx::query(
                    "INSERT INTO delta_failures (device_id, component, from_version, to_version, target_name, state, reason, \
                     files, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (device_id, component) DO UPDATE SET from_version = excluded.from_version, \
                     to_version = excluded.to_version, target_name = excluded.target_name, state = excluded.state, \
                     reason = excluded.reason, files = excluded.files, failed_at = excluded.failed_at",
                )
                .bind(record.device_id.as_str())
                .bind(record.component.as_str())
                .bind(record.from_version.to_string())
                .bind(record.to_version.to_string())
                .bind(&record.target_name)
                .bind(&record.state)
                .bind(&record.reason)
                .bind(files)
                .bind(crate::sql::to_i64(record.failed_at, &format!("{what} failed_at"))?)
                .execute(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("store {what}"), e))?;
                Ok(())
            }

            async fn delta_failures(
                &self,
                device: &ferry_core::DeviceId,
            ) -> Result<Vec<ferry_core::api::DeltaFailureRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT device_id, component, from_version, to_version, target_name, state, reason, files, failed_at \
                     FROM delta_failures WHERE device_id = $1 ORDER BY component",
                )
                .bind(device.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, &format!("list delta failures of device '{device}'"), e))?;
                rows.iter().map(Self::delta_failure_from_row).collect()
            }

            async fn clear_delta_failure(
                &self,
                device: &ferry_core::DeviceId,
                component: ferry_core::Component,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM delta_failures WHERE device_id = $1 AND component = $2")
                    .bind(device.as_str())
                    .bind(component.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        crate::sql::db_err(
                            Self::BACKEND,
                            &format!("clear the delta-failure record of device '{device}' for {component}"),
                            e,
                        )
                    })?;
                Ok(done.rows_affected() > 0)
            }

            async fn add_alert(
                &self,
                alert: &ferry_core::api::SecurityAlert,
                message: &str,
                now: u64,
            ) -> Result<i64, StoreError> {
                use sqlx::Row;
                let b = Self::BACKEND;
                let version_text = alert.version.to_string();
                let release = format!("release {} {}", alert.component, alert.version);
                let what = format!("security alert of device '{}' about {release}", alert.device_id);
                let encode = |field: &str, e: serde_json::Error| StoreError::Config(format!("{what}: {field} cannot be encoded: {e}"));
                let findings = serde_json::to_string(&alert.findings).map_err(|e| encode("findings", e))?;
                let evidence = serde_json::to_string(&alert.evidence).map_err(|e| encode("evidence", e))?;
                let mut tx = self.begin().await?;
                let exists = sqlx::query("SELECT 1 AS one FROM releases WHERE component = $1 AND version = $2")
                    .bind(alert.component.as_str())
                    .bind(&version_text)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("find {release}"), e))?;
                if exists.is_none() {
                    return Err(StoreError::NotFound(format!("{release} in the {b} registry")));
                }
                let row = sqlx::query(
                    "INSERT INTO alerts (received_at, device_id, component, version, stage, findings, evidence, \
                     detected_at, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(crate::sql::to_i64(now, "alert receipt time")?)
                .bind(alert.device_id.as_str())
                .bind(alert.component.as_str())
                .bind(&version_text)
                .bind(&alert.stage)
                .bind(findings)
                .bind(evidence)
                .bind(crate::sql::to_i64(alert.detected_at, &format!("{what} detected_at"))?)
                .bind(message)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("archive {what}"), e))?;
                let id: i64 = row.try_get("id").map_err(|e| crate::sql::db_err(b, "decode new alert id", e))?;
                sqlx::query(
                    "INSERT INTO release_halts (component, version, alert_id, since) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (component, version) DO NOTHING",
                )
                .bind(alert.component.as_str())
                .bind(&version_text)
                .bind(id)
                .bind(crate::sql::to_i64(now, "halt time")?)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("halt the rollout of {release}"), e))?;
                tx.commit().await.map_err(|e| crate::sql::db_err(b, &format!("commit {what}"), e))?;
                Ok(id)
            }

            async fn alerts(&self, limit: u32) -> Result<Vec<ferry_core::api::ArchivedAlert>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, received_at, device_id, component, version, stage, findings, evidence, detected_at, \
                     message FROM alerts ORDER BY received_at DESC, id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, "list security alerts", e))?;
                rows.iter().map(Self::alert_from_row).collect()
            }

            async fn resume_release(
                &self,
                component: ferry_core::Component,
                version: &ferry_core::Version,
            ) -> Result<bool, StoreError> {
                let b = Self::BACKEND;
                let version_text = version.to_string();
                let release = format!("release {component} {version}");
                let mut tx = self.begin().await?;
                let exists = sqlx::query("SELECT 1 AS one FROM releases WHERE component = $1 AND version = $2")
                    .bind(component.as_str())
                    .bind(&version_text)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("find {release}"), e))?;
                if exists.is_none() {
                    return Err(StoreError::NotFound(format!("{release} in the {b} registry")));
                }
                let done = sqlx::query("DELETE FROM release_halts WHERE component = $1 AND version = $2")
                    .bind(component.as_str())
                    .bind(&version_text)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("resume {release}"), e))?;
                let rollout = sqlx::query(
                    "UPDATE rollouts SET halted_reason = NULL, halted_at = NULL \
                     WHERE component = $1 AND version = $2 AND halted_reason IS NOT NULL",
                )
                .bind(component.as_str())
                .bind(&version_text)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("resume the rollout of {release}"), e))?;
                tx.commit().await.map_err(|e| crate::sql::db_err(b, &format!("commit resuming {release}"), e))?;
                Ok(done.rows_affected() + rollout.rows_affected() > 0)
            }

            async fn put_rollout(&self, record: &ferry_core::rollout::RolloutRecord) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                let what = format!("rollout of {} {}", record.component, record.version);
                let plan = serde_json::to_string(&record.plan).map_err(|e| StoreError::Config(format!("{what}: {e}")))?;
                let done = sqlx::query(
                    "INSERT INTO rollouts (component, version, plan, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (component, version) DO UPDATE SET plan = excluded.plan, created_at = excluded.created_at",
                )
                .bind(record.component.as_str())
                .bind(record.version.to_string())
                .bind(plan)
                .bind(crate::sql::to_i64(record.created_at, &format!("{what} created_at"))?)
                .execute(&self.pool)
                .await;
                match done {
                    Ok(_) => Ok(()),
                    Err(e) if crate::sql::is_foreign_key_violation(&e) => Err(StoreError::NotFound(format!(
                        "release {} {} in the {b} registry",
                        record.component, record.version
                    ))),
                    Err(e) => Err(crate::sql::db_err(b, &format!("store {what}"), e)),
                }
            }

            async fn rollouts(&self) -> Result<Vec<ferry_core::rollout::RolloutRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT component, version, plan, created_at, halted_reason, halted_at FROM rollouts ORDER BY component, version",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, "list rollouts", e))?;
                rows.iter().map(Self::rollout_from_row).collect()
            }

            async fn halt_rollout(
                &self,
                component: ferry_core::Component,
                version: &ferry_core::Version,
                reason: &str,
                now: u64,
            ) -> Result<bool, StoreError> {
                let what = format!("rollout of {component} {version}");
                let done = sqlx::query(
                    "UPDATE rollouts SET halted_reason = $1, halted_at = $2 \
                     WHERE component = $3 AND version = $4 AND halted_reason IS NULL",
                )
                .bind(reason)
                .bind(crate::sql::to_i64(now, &format!("{what} halted_at"))?)
                .bind(component.as_str())
                .bind(version.to_string())
                .execute(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, &format!("halt {what}"), e))?;
                Ok(done.rows_affected() > 0)
            }

            async fn release_reports(
                &self,
                component: ferry_core::Component,
                version: &ferry_core::Version,
            ) -> Result<Vec<ferry_core::api::ArchivedReport>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, received_at, device_id, component, from_version, to_version, outcome, reason, \
                     log_tail, bytes_downloaded, rolled_back FROM reports WHERE component = $1 AND to_version = $2 \
                     ORDER BY received_at, id",
                )
                .bind(component.as_str())
                .bind(version.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(Self::BACKEND, &format!("list reports for {component} {version}"), e))?;
                rows.iter().map(Self::report_from_row).collect()
            }

            async fn put_firmware(&self, id: &str, content: &[u8], now: u64) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                sqlx::query(
                    "INSERT INTO firmware (id, content, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
                )
                .bind(id)
                .bind(content)
                .bind(crate::sql::to_i64(now, &format!("firmware '{id}' updated_at"))?)
                .execute(&self.pool)
                .await
                .map_err(|e| crate::sql::db_err(b, &format!("store firmware metadata '{id}'"), e))?;
                Ok(())
            }

            async fn firmware(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
                self.blob("SELECT content FROM firmware WHERE id = $1", id, &format!("firmware metadata '{id}'")).await
            }

            async fn all_firmware(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                self.blobs("SELECT id AS key, content FROM firmware ORDER BY id", "firmware metadata").await
            }

            async fn put_metadata(&self, files: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
                let b = Self::BACKEND;
                // Last one wins for repeated names; sorted so concurrent writers lock rows in one order.
                let files: std::collections::BTreeMap<&str, &[u8]> =
                    files.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())).collect();
                let mut tx = self.begin().await?;
                for (name, bytes) in files {
                    sqlx::query(
                        "INSERT INTO tuf_metadata (name, content) VALUES ($1, $2) \
                         ON CONFLICT (name) DO UPDATE SET content = excluded.content",
                    )
                    .bind(name)
                    .bind(bytes)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::sql::db_err(b, &format!("store TUF metadata file '{name}'"), e))?;
                }
                tx.commit().await.map_err(|e| crate::sql::db_err(b, "commit TUF metadata", e))?;
                Ok(())
            }

            async fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
                self.blob("SELECT content FROM tuf_metadata WHERE name = $1", name, &format!("TUF metadata file '{name}'")).await
            }

            async fn all_metadata(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                self.blobs("SELECT name AS key, content FROM tuf_metadata ORDER BY name", "TUF metadata files").await
            }
        }
    };
}

pub(crate) use sql_registry;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in a migrations folder must be embedded, in order, and nothing else.
    fn assert_embeds_folder(folder: &str, embedded: &[Embedded]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(folder);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), embedded.len(), "{folder}: files {files:?} vs {} embedded migrations", embedded.len());
        for (file, &(version, _, sql)) in files.iter().zip(embedded) {
            let number: i64 = file.split('_').next().unwrap().parse().unwrap();
            assert_eq!(number, version, "{folder}/{file} embedded under version {version}");
            assert_eq!(
                std::fs::read_to_string(dir.join(file)).unwrap(),
                sql,
                "{folder}/{file} differs from the embedded text"
            );
        }
    }

    #[test]
    fn every_sqlite_migration_file_is_embedded() {
        assert_embeds_folder("sqlite", SQLITE_MIGRATIONS);
    }

    #[test]
    fn every_postgres_migration_file_is_embedded() {
        assert_embeds_folder("postgres", POSTGRES_MIGRATIONS);
    }

    #[test]
    fn u64_beyond_63_bits_is_refused_with_a_message() {
        let err = to_i64(u64::MAX, "artifact length").unwrap_err().to_string();
        assert!(err.contains("artifact length"), "{err}");
        assert_eq!(to_i64(5, "x").unwrap(), 5);
    }

    #[test]
    fn blacklist_insert_order_is_sorted_and_unique() {
        let ids: Vec<DeviceId> = ["c", "a", "c", "b"].iter().map(|s| DeviceId::new(*s).unwrap()).collect();
        let got: Vec<&str> = sorted_unique(&ids).iter().map(|d| d.as_str()).collect();
        assert_eq!(got, ["a", "b", "c"]);
    }
}
