//! The per-tenant limit on concurrent requests: one tenant's burst cannot take every worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counts each tenant's requests in flight and refuses those above the limit.
#[derive(Debug, Default)]
pub struct InFlight {
    max: usize,
    per_tenant: Mutex<HashMap<i64, Arc<AtomicUsize>>>,
}

/// One request in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    count: Option<Arc<AtomicUsize>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(c) = self.count.take() {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl InFlight {
    /// A limiter allowing `max` concurrent requests per tenant (0: unlimited).
    pub fn new(max: usize) -> Self {
        InFlight { max, per_tenant: Mutex::new(HashMap::new()) }
    }

    /// A slot for one more request of `tenant`, or `None` if it already has `max` in flight.
    pub fn try_acquire(&self, tenant: i64) -> Option<Permit> {
        if self.max == 0 {
            return Some(Permit { count: None });
        }
        let count = {
            let mut map = self.per_tenant.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(tenant).or_default())
        };
        if count.fetch_add(1, Ordering::AcqRel) >= self.max {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Permit { count: Some(count) })
    }

    /// How many requests `tenant` has in flight.
    #[cfg(test)]
    pub fn in_flight(&self, tenant: i64) -> usize {
        let map = self.per_tenant.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&tenant).map_or(0, |c| c.load(Ordering::Acquire))
    }
}

/// Each tenant's share of the store for queries (lists and searches, which may examine
/// thousands of rows): at most `per_tenant` of one tenant's queries run at once, the rest wait
/// their turn. Kept well below the store's connections (SQLite: 4 readers; PostgreSQL: 8), so
/// one customer's searches cannot take every connection from the others.
#[derive(Debug)]
pub struct QuerySlots {
    per_tenant: usize,
    map: Mutex<HashMap<i64, Arc<tokio::sync::Semaphore>>>,
}

impl QuerySlots {
    /// At most `per_tenant` concurrent queries per tenant (0: no limit).
    pub fn new(per_tenant: usize) -> Self {
        QuerySlots { per_tenant, map: Mutex::new(HashMap::new()) }
    }

    /// Waits for a query slot of `tenant`; `None` when there is no limit.
    pub async fn acquire(&self, tenant: i64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if self.per_tenant == 0 {
            return None;
        }
        let slots = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(tenant).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_tenant))))
        };
        slots.acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_waits_for_its_own_query_slots_only() {
        let q = QuerySlots::new(2);
        let a = q.acquire(1).await;
        let b = q.acquire(1).await;
        assert!(a.is_some() && b.is_some());
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), q.acquire(1)).await;
        assert!(third.is_err(), "a third concurrent query of tenant 1 waits");
        let other = tokio::time::timeout(std::time::Duration::from_millis(50), q.acquire(2)).await;
        assert!(other.is_ok_and(|p| p.is_some()), "another tenant does not wait");
        drop(a);
        assert!(q.acquire(1).await.is_some(), "a freed slot is taken");
    }

    #[test]
    fn refuses_above_the_limit_per_tenant_and_frees_on_drop() {
        let l = InFlight::new(2);
        let a = l.try_acquire(1);
        let b = l.try_acquire(1);
        assert!(a.is_some() && b.is_some());
        assert!(l.try_acquire(1).is_none(), "a third concurrent request of tenant 1 is refused");
        assert_eq!(l.in_flight(1), 2, "a refused request does not hold a slot");
        assert!(l.try_acquire(2).is_some(), "another tenant is not affected");
        drop(a);
        assert_eq!(l.in_flight(1), 1);
        assert!(l.try_acquire(1).is_some(), "a freed slot can be taken again");
    }

    #[test]
    fn zero_means_unlimited() {
        let l = InFlight::new(0);
        let held: Vec<_> = (0..1000).map(|_| l.try_acquire(1)).collect();
        assert!(held.iter().all(Option::is_some));
    }
}
