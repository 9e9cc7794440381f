//! crsql_config_set / crsql_config_get: settings persisted in `crr_meta` as `config.<name>`.

use super::conn::Conn;
use super::txn::clock_mode_of;
use super::{meta, schema, tables};
use crate::core::hlc::DRIFT_MS_MAX_DEFAULT;
use crate::core::value::Value;
use crate::error::{Error, Result};

/// Known settings and their defaults.
const SETTINGS: &[&str] = &["clock", "hlc-max-drift-ms", "merge-equal-values"];

fn default_of(name: &str) -> Value {
    match name {
        "clock" => Value::Text("hlc".into()),
        "hlc-max-drift-ms" => Value::Integer(DRIFT_MS_MAX_DEFAULT),
        _ => Value::Integer(0),
    }
}

fn known(name: &str) -> Result<()> {
    if SETTINGS.contains(&name) {
        Ok(())
    } else {
        Err(Error::new(format!("unknown setting \"{name}\" (known: {})", SETTINGS.join(", "))))
    }
}

pub fn get(conn: &Conn, name: &str) -> Result<Value> {
    known(name)?;
    if !schema::is_installed(conn)? {
        return Ok(default_of(name));
    }
    Ok(meta::get(conn, &format!("config.{name}"))?.unwrap_or_else(|| default_of(name)))
}

pub fn set(conn: &Conn, name: &str, value: &Value) -> Result<Value> {
    known(name)?;
    // (Checked before a new database gets the internal tables: a refused value leaves it as
    // it was, which until 2026-12-07 it did not.)
    checked(name, value)?;
    schema::install_to_write(conn)?;
    // Checked and written in one transaction, which holds the write lock before it reads
    // (savepoint::in_savepoint): no CRR made by another connection comes in between.
    super::savepoint::in_savepoint(conn, "crr_config", || write(conn, name, value))
}

/// Refuses a value the setting cannot take (whatever the database holds).
fn checked(name: &str, value: &Value) -> Result<()> {
    match (name, value) {
        ("clock", _) => clock_mode_of(Some(value.clone())).map(drop).map_err(|_| Error::new("setting \"clock\" must be 'hlc' or 'lamport'")),
        ("hlc-max-drift-ms", Value::Integer(ms)) if *ms >= 0 => Ok(()),
        ("hlc-max-drift-ms", _) => Err(Error::new("setting \"hlc-max-drift-ms\" must be a non-negative integer (0 = no limit)")),
        (_, Value::Integer(_)) => Ok(()),
        _ => Err(Error::new(format!("setting \"{name}\" must be an integer"))),
    }
}

/// Writes a value `checked` has passed.
fn write(conn: &Conn, name: &str, value: &Value) -> Result<Value> {
    if name == "clock" {
        let mode = clock_mode_of(Some(value.clone()))?;
        let current = clock_mode_of(meta::get(conn, "config.clock")?)?;
        if mode != current && !tables::all(conn)?.is_empty() {
            return Err(Error::new("cannot change setting \"clock\" after CRRs exist (set it before the first crsql_as_crr)"));
        }
    }
    let value = value.clone();
    super::txn::writing_settings(conn)?;
    meta::set(conn, &format!("config.{name}"), &value)?;
    Ok(value)
}
