//! Temporary: replaced by the full proxy models.

/// The proxy-facing form of a slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slot {
    /// Slot id.
    pub id: i32,
    /// Requests wait.
    pub locked: bool,
    /// Master address.
    pub backend_addr: String,
    /// Its group.
    pub backend_addr_group_id: i32,
    /// Source master while migrating.
    pub migrate_from: String,
    /// Its group.
    pub migrate_from_group_id: i32,
    /// 0 sync, 1 semi-async.
    pub forward_method: i32,
    /// Replica groups.
    pub replica_groups: Vec<Vec<String>>,
}
