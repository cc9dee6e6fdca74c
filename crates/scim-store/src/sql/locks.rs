//! The one order in which writes lock resource rows (PostgreSQL; SQLite has one writer and no
//! row locks): after the tenant's row, **groups before users, each in key (`pk`) order**.
//!
//! Two writes that each wait for a row the other holds wait forever (PostgreSQL aborts one,
//! "deadlock detected"); writes that all take their rows in one order cannot. The writes that
//! lock more than one resource row are a group's (the group, then the members it adds or
//! removes, whose version changes with their `groups`) and a deletion (the groups the resource
//! leaves, whose version changes and which get an event, then the resource, then a deleted
//! group's members). Groups before users is the order both already want; it was broken by a
//! deletion locking its user before the user's groups, and by rows locked in whatever order a
//! statement's plan met them. A consistent order rather than a lock on the tenant: writes of
//! one tenant that share no row keep running side by side.
//!
//! A write cannot always know every row it needs before it takes the first: a deletion finds
//! the groups it leaves before it holds the resource, and one that joined a group just then
//! shows only once it does; a group's members may be groups with smaller keys. Then the write
//! does not take the row out of order: [`check`] notes what it needs, the write fails, and the
//! engine runs it again in a new transaction that takes all of that first ([`take_first`]), in
//! order. The last of [`ATTEMPTS`] attempts takes what it needs as it comes.

use std::collections::BTreeSet;

use super::{Arg, Conn, Dialect, Lock};
use crate::{Kind, Result, StoreError};

/// How many times an engine runs a write that needs rows out of order, the last time taking
/// them as they come.
pub const ATTEMPTS: u32 = 4;

/// Where a row stands in the lock order: groups (0) before users (1), then by key.
pub(crate) type Place = (u8, i64);

fn place(kind: Kind, pk: i64) -> Place {
    (u8::from(kind == Kind::User), pk)
}

/// The resource rows one attempt of a write holds, and what it found it needs. A connection of
/// an engine with row locks holds one per write ([`Conn::locks`]).
#[derive(Debug, Default)]
pub struct Locks {
    /// What this attempt holds (or has been given to take first).
    held: BTreeSet<Place>,
    /// What an earlier attempt found it needs: taken first.
    first: Vec<Place>,
    /// What the next attempt must take first, once this one found it needs rows out of order.
    again: Option<Vec<Place>>,
    /// This is the last attempt: rows out of order are taken as they come.
    last: bool,
}

impl Locks {
    /// For an attempt of a write that takes `first` before anything else (what the previous
    /// attempt needed; nothing for the first attempt); `attempt` counts from 1.
    pub(crate) fn new(first: Vec<Place>, attempt: u32) -> Self {
        Locks { first, last: attempt >= ATTEMPTS, ..Locks::default() }
    }

    /// Whether the attempt failed for wanting rows out of order, and what the next must take
    /// first.
    pub(crate) fn again(&mut self) -> Option<Vec<Place>> {
        self.again.take()
    }
}

/// Takes the rows an earlier attempt of this write found it needs, in order, `FOR UPDATE`
/// (which covers every lock a write takes on a resource). Whether there were any. Called
/// right after the tenant's row is locked.
pub(crate) async fn take_first<C: Conn>(c: &mut C) -> Result<bool> {
    let Some(first) = c.locks().map(|l| std::mem::take(&mut l.first)) else { return Ok(false) };
    if first.is_empty() {
        return Ok(false);
    }
    let pks = first.iter().map(|(_, pk)| *pk).collect();
    let d = c.dialect();
    let sql =
        format!("SELECT pk FROM resources WHERE {} ORDER BY kind DESC, pk{}", d.in_list("pk", 1), d.lock(Lock::Update));
    c.query(&sql, &[Arg::Ints(pks)]).await?;
    // A key never changes kind nor names another resource, so the places stand even for the
    // rows deleted since.
    if let Some(l) = c.locks() {
        l.held.extend(first);
    }
    Ok(true)
}

/// Notes a row the write has locked (its first, or one it held already).
pub(crate) fn hold<C: Conn>(c: &mut C, kind: Kind, pk: i64) {
    if let Some(l) = c.locks() {
        l.held.insert(place(kind, pk));
    }
}

/// Called before a statement locks `rows` in the lock order ([`in_lock_order`]): that keeps
/// the order if each of them is held already or comes after every row held. Else the write
/// must start again taking them all first: the error says so, and the engine does.
pub(crate) fn check<C: Conn>(c: &mut C, rows: impl IntoIterator<Item = (Kind, i64)>) -> Result<()> {
    let Some(l) = c.locks() else { return Ok(()) };
    let new: Vec<Place> = rows.into_iter().map(|(k, pk)| place(k, pk)).filter(|p| !l.held.contains(p)).collect();
    let in_order = match (l.held.last(), new.iter().min()) {
        (Some(top), Some(least)) => least > top,
        _ => true,
    };
    if in_order || l.last {
        l.held.extend(new);
        return Ok(());
    }
    l.held.extend(new);
    l.again = Some(l.held.iter().copied().collect());
    Err(StoreError::Backend("the write needs rows out of the lock order and is to run again".into()))
}

/// The condition "`col` is one of the keys bound at placeholder `n`" that, on PostgreSQL, locks
/// those rows (`FOR NO KEY UPDATE`) in the lock order: a subquery's rows are locked in the
/// order of its `ORDER BY`, whereas an `UPDATE ... WHERE pk = ANY(..)` locks rows in the order
/// its plan meets them. Kind 1 is a group ([`super::kind_code`]).
pub(crate) fn in_lock_order(d: &Dialect, col: &str, n: usize) -> String {
    if !d.row_locks {
        return d.in_list(col, n);
    }
    format!(
        "{col} IN (SELECT pk FROM resources WHERE {} ORDER BY kind DESC, pk{})",
        d.in_list("pk", n),
        d.lock(Lock::NoKeyUpdate)
    )
}
