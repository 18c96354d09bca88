//! Slots: what the proxies see of each slot mapping (spec §6.5's table), creating and
//! removing slot actions, and assigning slots directly (without moving data).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};

use codis_model::MAX_SLOT_NUM;
use codis_model::proxy::{Proxy, Slot};
use codis_model::topom::{SlotAction, SlotMapping, action};

use super::error::{Result, invalid};
use super::topom::{Context, Topom};

/// Computes proxies' Slot entries from a context.
#[derive(Debug)]
pub struct SlotView<'a> {
    ctx: &'a Context,
    ips: RefCell<BTreeMap<String, Option<IpAddr>>>,
}

/// The IP of a `host:port` (an IP literal, or the first address the name resolves to).
fn lookup_ip(addr: &str) -> Option<IpAddr> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    (host, 0u16)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .map(|a| a.ip())
}

impl<'a> SlotView<'a> {
    /// A view of `ctx`.
    pub fn new(ctx: &'a Context) -> Self {
        SlotView {
            ctx,
            ips: RefCell::new(BTreeMap::new()),
        }
    }

    fn ip(&self, addr: &str) -> Option<IpAddr> {
        if let Some(ip) = self.ips.borrow().get(addr) {
            return *ip;
        }
        let ip = lookup_ip(addr);
        self.ips.borrow_mut().insert(addr.to_string(), ip);
        ip
    }

    fn is_group_locked(&self, gid: i64) -> bool {
        self.ctx
            .groups
            .get(&gid)
            .is_some_and(|g| g.is_promoting_prepared())
    }

    /// Whether proxies must hold requests on the slot.
    pub fn is_slot_locked(&self, m: &SlotMapping) -> bool {
        match m.action.state.as_str() {
            action::PREPARED => true,
            action::MIGRATING => {
                self.is_group_locked(m.group_id) || self.is_group_locked(m.action.target_id)
            }
            action::FINISHED => self.is_group_locked(m.action.target_id),
            _ => self.is_group_locked(m.group_id),
        }
    }

    /// The replicas that may serve reads of group `gid` for proxy `p`, best first: same
    /// datacenter and IP, same datacenter, the rest (all in the last class without a proxy).
    pub fn replica_groups(&self, gid: i64, p: Option<&Proxy>) -> Vec<Vec<String>> {
        let Some(g) = self.ctx.groups.get(&gid) else {
            return Vec::new();
        };
        if !g.promoting.state.is_empty() || g.servers.len() <= 1 {
            return Vec::new();
        }
        let (dc, ip) = match p {
            Some(p) => (p.datacenter.as_str(), self.ip(&p.admin_addr)),
            None => ("", None),
        };
        let mut classes: [Vec<String>; 3] = Default::default();
        for s in g.servers.iter().filter(|s| s.replica_group) {
            let class = match ip {
                Some(ip) if s.datacenter == dc => {
                    if self.ip(&s.addr) == Some(ip) {
                        0
                    } else {
                        1
                    }
                }
                _ => 2,
            };
            classes[class].push(s.addr.clone());
        }
        classes.into_iter().filter(|c| !c.is_empty()).collect()
    }

    /// The Slot entry a proxy (or, with `None`, anyone) gets for a mapping.
    pub fn to_slot(&self, m: &SlotMapping, p: Option<&Proxy>) -> Slot {
        let mut slot = Slot {
            id: m.id,
            locked: self.is_slot_locked(m),
            forward_method: self.ctx.method,
            ..Slot::default()
        };
        match m.action.state.as_str() {
            action::PREPARED | action::MIGRATING => {
                slot.backend_addr = self.ctx.master(m.action.target_id).to_string();
                slot.backend_addr_group_id = m.action.target_id;
                slot.migrate_from = self.ctx.master(m.group_id).to_string();
                slot.migrate_from_group_id = m.group_id;
            }
            action::FINISHED => {
                slot.backend_addr = self.ctx.master(m.action.target_id).to_string();
                slot.backend_addr_group_id = m.action.target_id;
            }
            action::PREPARING => {
                slot.backend_addr = self.ctx.master(m.group_id).to_string();
                slot.backend_addr_group_id = m.group_id;
            }
            _ => {
                slot.backend_addr = self.ctx.master(m.group_id).to_string();
                slot.backend_addr_group_id = m.group_id;
                slot.replica_groups = self.replica_groups(m.group_id, p);
            }
        }
        if slot.backend_addr.is_empty() {
            slot.backend_addr_group_id = 0;
        }
        if slot.migrate_from.is_empty() {
            slot.migrate_from_group_id = 0;
        }
        slot
    }

    /// Every slot, for one proxy (or for `/topom/slots`).
    pub fn all(&self, p: Option<&Proxy>) -> Vec<Slot> {
        self.ctx.slots.iter().map(|m| self.to_slot(m, p)).collect()
    }
}

/// A pending action moving `m` to `gid`, numbered after `index`.
fn pending(m: &SlotMapping, gid: i64, index: i64) -> SlotMapping {
    SlotMapping {
        id: m.id,
        group_id: m.group_id,
        action: SlotAction {
            index,
            state: action::PENDING.to_string(),
            target_id: gid,
        },
    }
}

fn check_target(ctx: &Context, gid: i64) -> Result<()> {
    if ctx.group(gid)?.servers.is_empty() {
        return invalid!("group-[{gid}] is empty");
    }
    Ok(())
}

impl Topom {
    /// `slots/action/create/:sid/:gid`: queue moving slot `sid` to group `gid`.
    ///
    /// # Errors
    /// Busy slot, slot already there, empty or missing group; coordinator errors.
    pub async fn slot_create_action(&self, sid: i64, gid: i64) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let m = ctx.slot(sid)?;
        if !m.action.state.is_empty() {
            return invalid!("slot-[{sid}] action already exists");
        }
        if m.group_id == gid {
            return invalid!("slot-[{sid}] already in group-[{gid}]");
        }
        check_target(&ctx, gid)?;
        let m = pending(m, gid, ctx.max_slot_action_index() + 1);
        locked.store_slot(&m).await
    }

    /// `slots/action/create-some/:src/:dst/:num`: queue the first `num` idle slots of `src`.
    ///
    /// # Errors
    /// Empty or missing target; coordinator errors.
    pub async fn slot_create_action_some(&self, from: i64, to: i64, num: i64) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        check_target(&ctx, to)?;
        let mut index = ctx.max_slot_action_index();
        let todo: Vec<SlotMapping> = ctx
            .slots
            .iter()
            .filter(|m| m.action.state.is_empty() && m.group_id == from && m.group_id != to)
            .take(usize::try_from(num).unwrap_or(0))
            .map(|m| {
                index += 1;
                pending(m, to, index)
            })
            .collect();
        locked.store_slots(&todo).await
    }

    /// `slots/action/create-range/:beg/:end/:gid`: queue every slot of `[beg, end]`.
    ///
    /// # Errors
    /// A bad range, a busy slot or one already in `gid`; empty or missing group.
    pub async fn slot_create_action_range(&self, beg: i64, end: i64, gid: i64) -> Result<()> {
        if !(0..MAX_SLOT_NUM as i64).contains(&beg)
            || !(0..MAX_SLOT_NUM as i64).contains(&end)
            || beg > end
        {
            return invalid!("invalid slot range [{beg},{end}]");
        }
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        check_target(&ctx, gid)?;
        for sid in beg..=end {
            let m = ctx.slot(sid)?;
            if !m.action.state.is_empty() {
                return invalid!("slot-[{sid}] action already exists");
            }
            if m.group_id == gid {
                return invalid!("slot-[{sid}] already in group-[{gid}]");
            }
        }
        let mut index = ctx.max_slot_action_index();
        let todo: Vec<SlotMapping> = (beg..=end)
            .filter_map(|sid| ctx.slot(sid).ok())
            .map(|m| {
                index += 1;
                pending(m, gid, index)
            })
            .collect();
        locked.store_slots(&todo).await
    }

    /// `slots/action/remove/:sid`: drop a pending action.
    ///
    /// # Errors
    /// No action, or an action already started.
    pub async fn slot_remove_action(&self, sid: i64) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let m = ctx.slot(sid)?;
        if m.action.state.is_empty() {
            return invalid!("slot-[{sid}] action doesn't exist");
        }
        if m.action.state != action::PENDING {
            return invalid!("slot-[{sid}] action isn't pending");
        }
        let m = SlotMapping {
            id: m.id,
            group_id: m.group_id,
            action: SlotAction::default(),
        };
        locked.store_slot(&m).await
    }

    /// `slots/assign`: point slots at groups without moving data (or, with `offline`, at
    /// nothing). Target groups are marked out of sync until every proxy took the new table.
    ///
    /// # Errors
    /// A bad slot, a missing or empty group, an action in the body; coordinator or proxy
    /// errors.
    pub async fn slots_assign(&self, slots: &[SlotMapping], offline: bool) -> Result<()> {
        let mut locked = self.lock().await?;
        let mut ctx = locked.context().await?;
        let mut seen = std::collections::BTreeSet::new();
        for m in slots {
            ctx.slot(m.id)?;
            if !seen.insert(m.id) {
                return invalid!("slot-[{}] is assigned twice", m.id);
            }
            if offline {
                if m.group_id != 0 {
                    return invalid!("group of slot-[{}] should be 0", m.id);
                }
            } else {
                check_target(&ctx, m.group_id)?;
            }
            if !m.action.state.is_empty() {
                return invalid!("invalid slot-[{}] action = {}", m.id, m.action.state);
            }
        }
        let gids: std::collections::BTreeSet<i64> = slots.iter().map(|m| m.group_id).collect();
        for gid in gids.iter().filter(|g| **g != 0) {
            let g = ctx.groups.get_mut(gid).expect("checked above");
            if !g.out_of_sync {
                g.out_of_sync = true;
                let g = g.clone();
                locked.store_group(&g).await?;
            }
        }
        let fresh: Vec<SlotMapping> = slots
            .iter()
            .map(|m| SlotMapping {
                id: m.id,
                group_id: m.group_id,
                action: SlotAction::default(),
            })
            .collect();
        locked.store_slots(&fresh).await?;
        for m in &fresh {
            ctx.slots[usize::try_from(m.id).unwrap_or(0)] = m.clone();
        }
        locked.resync_slots(&ctx, &fresh).await?;
        for gid in gids.iter().filter(|g| **g != 0) {
            let g = ctx.groups.get_mut(gid).expect("checked above");
            g.out_of_sync = false;
            let g = g.clone();
            locked.store_group(&g).await?;
        }
        Ok(())
    }

    /// `slots/action/interval/:value` (µs, clamped to 0..=1,000,000).
    pub fn set_slot_action_interval(&self, us: i64) {
        self.action
            .interval
            .store(us.clamp(0, 1_000_000), std::sync::atomic::Ordering::Release);
    }

    /// `slots/action/disabled/:value`.
    pub fn set_slot_action_disabled(&self, disabled: bool) {
        self.action
            .disabled
            .store(disabled, std::sync::atomic::Ordering::Release);
    }
}
