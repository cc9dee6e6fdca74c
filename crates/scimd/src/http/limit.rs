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

#[cfg(test)]
mod tests {
    use super::*;

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
