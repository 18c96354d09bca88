//! Rebalance by slot count, Codis 3.2's algorithm (spec §6.6): every non-empty group ends up
//! with ⌊1024/n⌋ or ⌈1024/n⌉ slots, moving as few slots as it can; offline slots are handed
//! to the smallest groups; slots already moving count for their target.

use std::collections::{BTreeMap, BTreeSet};

use codis_model::MAX_SLOT_NUM;
use codis_model::topom::{Group, SlotAction, SlotMapping, action};

use super::error::{Result, invalid};
use super::topom::Topom;

/// The plan: slot id → target group.
pub type Plan = BTreeMap<i64, i64>;

/// Computes the plan for `slots` (all 1024) over `groups`.
///
/// # Errors
/// When no group has a server.
pub fn plan(slots: &[SlotMapping], groups: &BTreeMap<i64, Group>) -> Result<Plan> {
    let gids: Vec<i64> = groups
        .values()
        .filter(|g| !g.servers.is_empty())
        .map(|g| g.id)
        .collect();
    if gids.is_empty() {
        return invalid!("no valid group could be found");
    }
    let n = gids.len() as i64;
    let total = MAX_SLOT_NUM as i64;
    let mut assigned: BTreeMap<i64, i64> = BTreeMap::new();
    let mut pendings: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut moveout: BTreeMap<i64, i64> = BTreeMap::new();
    let mut docking: Vec<i64> = Vec::new();
    let size = |assigned: &BTreeMap<i64, i64>,
                pendings: &BTreeMap<i64, Vec<i64>>,
                moveout: &BTreeMap<i64, i64>,
                gid: i64| {
        assigned.get(&gid).copied().unwrap_or(0) + pendings.get(&gid).map_or(0, |p| p.len() as i64)
            - moveout.get(&gid).copied().unwrap_or(0)
    };

    // Slots already moving stay where they go.
    for m in slots.iter().filter(|m| !m.action.state.is_empty()) {
        *assigned.entry(m.action.target_id).or_default() += 1;
    }
    // Each group keeps its first slots up to the lower bound; the rest may move.
    let lower = total / n;
    for m in slots
        .iter()
        .filter(|m| m.action.state.is_empty() && m.group_id != 0)
    {
        if size(&assigned, &pendings, &moveout, m.group_id) < lower {
            *assigned.entry(m.group_id).or_default() += 1;
        } else {
            pendings.entry(m.group_id).or_default().push(m.id);
        }
    }
    // Groups ordered by (size, id).
    let mut tree: BTreeSet<(i64, i64)> = gids
        .iter()
        .map(|&g| (size(&assigned, &pendings, &moveout, g), g))
        .collect();
    // Offline slots go to the smallest group.
    for m in slots
        .iter()
        .filter(|m| m.action.state.is_empty() && m.group_id == 0)
    {
        let Some(&(s, dest)) = tree.first() else {
            break;
        };
        tree.remove(&(s, dest));
        docking.push(m.id);
        *moveout.entry(dest).or_default() -= 1;
        tree.insert((size(&assigned, &pendings, &moveout, dest), dest));
    }
    // Move one slot at a time from the largest group to the smallest.
    let upper = (total + n - 1) / n;
    while tree.len() >= 2 {
        let Some(&(from_size, from)) = tree.last() else {
            break;
        };
        tree.remove(&(from_size, from));
        let movable = pendings.get(&from).map_or(0, |p| p.len() as i64);
        if movable == moveout.get(&from).copied().unwrap_or(0) {
            continue;
        }
        let Some(&(dest_size, dest)) = tree.first() else {
            break;
        };
        tree.remove(&(dest_size, dest));
        if from_size <= lower || dest_size >= upper || from_size - dest_size <= 1 {
            break;
        }
        *moveout.entry(from).or_default() += 1;
        *moveout.entry(dest).or_default() -= 1;
        tree.insert((size(&assigned, &pendings, &moveout, from), from));
        tree.insert((size(&assigned, &pendings, &moveout, dest), dest));
    }
    // Givers hand over their highest-numbered movable slots.
    for (gid, out) in &moveout {
        if *out > 0 {
            let mut sids = pendings.remove(gid).unwrap_or_default();
            sids.sort_unstable_by(|a, b| b.cmp(a));
            docking.extend(sids.into_iter().take(usize::try_from(*out).unwrap_or(0)));
        }
    }
    docking.sort_unstable();
    let mut docking = docking.into_iter();
    let mut plan = Plan::new();
    for gid in &gids {
        let incoming = -moveout.get(gid).copied().unwrap_or(0);
        for _ in 0..incoming.max(0) {
            match docking.next() {
                Some(sid) => {
                    plan.insert(sid, *gid);
                }
                None => break,
            }
        }
    }
    Ok(plan)
}

impl Topom {
    /// `slots/rebalance/:confirm`: the plan; with `confirm`, queued as pending actions in slot
    /// order.
    ///
    /// # Errors
    /// No usable group; coordinator errors.
    pub async fn slots_rebalance(&self, confirm: bool) -> Result<Plan> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let plan = plan(&ctx.slots, &ctx.groups)?;
        if confirm {
            let mut index = ctx.max_slot_action_index();
            let todo: Vec<SlotMapping> = plan
                .iter()
                .map(|(&sid, &gid)| {
                    index += 1;
                    SlotMapping {
                        id: sid,
                        group_id: ctx.slots[usize::try_from(sid).unwrap_or(0)].group_id,
                        action: SlotAction {
                            index,
                            state: action::PENDING.into(),
                            target_id: gid,
                        },
                    }
                })
                .collect();
            locked.store_slots(&todo).await?;
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codis_model::topom::GroupServer;

    fn groups(ids: &[i64]) -> BTreeMap<i64, Group> {
        ids.iter()
            .map(|&id| {
                (
                    id,
                    Group {
                        id,
                        servers: vec![GroupServer {
                            addr: format!("127.0.0.1:{}", 6000 + id),
                            ..GroupServer::default()
                        }],
                        ..Group::default()
                    },
                )
            })
            .collect()
    }

    fn slots(owner: impl Fn(i64) -> i64) -> Vec<SlotMapping> {
        (0..1024)
            .map(|id| SlotMapping {
                id,
                group_id: owner(id),
                action: SlotAction::default(),
            })
            .collect()
    }

    fn sizes(slots: &[SlotMapping], plan: &Plan) -> BTreeMap<i64, i64> {
        let mut out = BTreeMap::new();
        for m in slots {
            let g = plan.get(&m.id).copied().unwrap_or(m.group_id);
            *out.entry(g).or_default() += 1;
        }
        out
    }

    #[test]
    fn offline_slots_are_split_in_order() {
        let s = slots(|_| 0);
        let p = plan(&s, &groups(&[1, 2])).unwrap();
        assert_eq!(p.len(), 1024);
        assert!((0..512).all(|i| p[&i] == 1));
        assert!((512..1024).all(|i| p[&i] == 2));
    }

    #[test]
    fn a_new_group_takes_the_highest_slots() {
        let s = slots(|_| 1);
        let p = plan(&s, &groups(&[1, 2])).unwrap();
        assert_eq!(p.len(), 512);
        assert!((512..1024).all(|i| p[&i] == 2));
    }

    #[test]
    fn three_groups_end_within_one_slot() {
        let s = slots(|i| if i < 700 { 1 } else { 2 });
        let p = plan(&s, &groups(&[1, 2, 3])).unwrap();
        let sz = sizes(&s, &p);
        for g in [1, 2, 3] {
            assert!((341..=342).contains(&sz[&g]), "{sz:?}");
        }
        // Nothing moves between groups that are already fine.
        assert!(p.values().all(|&g| g == 3 || g == 2));
    }

    #[test]
    fn balanced_means_no_plan_and_moving_slots_count_for_their_target() {
        let s = slots(|i| if i < 512 { 1 } else { 2 });
        assert!(plan(&s, &groups(&[1, 2])).unwrap().is_empty());
        let mut s = slots(|_| 1);
        for m in s.iter_mut().skip(512) {
            m.action = SlotAction {
                index: m.id,
                state: action::PENDING.into(),
                target_id: 2,
            };
        }
        assert!(plan(&s, &groups(&[1, 2])).unwrap().is_empty());
        assert!(plan(&s, &BTreeMap::new()).is_err());
    }
}
