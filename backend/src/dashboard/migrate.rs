//! Slot migration, spec §6.5: each round picks up to `migration_parallel_slots` slots with an
//! action (never two of one group), walks each through preparing → prepared → migrating with
//! every proxy confirming each step, moves the keys with `SLOTSMGRTTAGSLOT[-ASYNC]` on the
//! source master, then stores `finished` and the final mapping. A restarted dashboard resumes
//! from the stored states.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use codis_model::proxy::forward_method;
use codis_model::topom::{SlotAction, SlotMapping, SlotMigration, action};

use super::error::{DashboardError, Result, invalid};
use super::topom::{Context, Topom};
use crate::redis::RedisClient;

/// What one call of a slot's executor found.
enum Step {
    /// Keys are left in this database.
    More { moved: i64, remaining: i64 },
    /// The database is empty: go on with the next one that has keys.
    NextDb(i64),
    /// No database has keys of the slot any more.
    Done,
}

impl Topom {
    /// The slot-action loop: one round after another while online; a failed round is
    /// reported in `progress` and retried after 5 s.
    pub async fn run_slot_actions(self: Arc<Self>) {
        while !self.is_closed() {
            if self.is_online() {
                match self.process_slot_actions().await {
                    Ok(true) => {
                        if !self.sleep(Duration::from_millis(10)).await {
                            break;
                        }
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "slot actions failed; retrying in 5s");
                        if !self.sleep(Duration::from_secs(5)).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            if !self.sleep(Duration::from_secs(1)).await {
                break;
            }
        }
    }

    /// One round: prepare the slots, run their executors concurrently. Returns whether any
    /// slot was processed.
    ///
    /// # Errors
    /// The first slot that failed.
    pub async fn process_slot_actions(self: &Arc<Self>) -> Result<bool> {
        if self.assign_offline_slots().await? {
            return Ok(true);
        }
        let mut marks = BTreeSet::new();
        let mut plans = BTreeSet::new();
        let parallel = usize::try_from(self.config.migration_parallel_slots.max(1)).unwrap_or(1);
        while plans.len() < parallel {
            match self.prepare_next_slot(&marks, &plans).await? {
                Some(m) => {
                    if m.group_id != 0 {
                        marks.insert(m.group_id);
                    }
                    marks.insert(m.action.target_id);
                    plans.insert(m.id);
                }
                None => break,
            }
        }
        if plans.is_empty() {
            return Ok(false);
        }
        let runs = plans.iter().map(|&sid| {
            let me = self.clone();
            async move {
                let result = me.process_slot(sid).await;
                match &result {
                    Err(e) => {
                        *me.action.progress.lock() = format!("[ERROR] Slot[{sid:04}]: {e}");
                    }
                    Ok(()) => me.action.progress.lock().clear(),
                }
                me.action.migrating.lock().remove(&sid);
                result
            }
        });
        for r in futures_util::future::join_all(runs).await {
            r?;
        }
        Ok(true)
    }

    /// Beyond Codis: pending actions of offline slots (no source group, so no key and no
    /// proxy traffic to protect) complete in one step, all together: one write per slot and
    /// one push to the proxies, instead of five writes and three pushes each, one slot per
    /// target group per round. Returns whether there were any.
    async fn assign_offline_slots(&self) -> Result<bool> {
        if self.action.disabled.load(Ordering::Acquire) {
            return Ok(false);
        }
        let mut locked = self.lock().await?;
        let mut ctx = locked.context().await?;
        let done: Vec<SlotMapping> = ctx
            .slots
            .iter()
            .filter(|m| m.group_id == 0 && m.action.state == action::PENDING)
            .filter(|m| {
                ctx.groups
                    .get(&m.action.target_id)
                    .is_some_and(|g| !g.servers.is_empty())
            })
            .map(|m| SlotMapping {
                id: m.id,
                group_id: m.action.target_id,
                action: SlotAction::default(),
            })
            .collect();
        if done.is_empty() {
            return Ok(false);
        }
        locked.store_slots(&done).await?;
        for m in &done {
            ctx.slots[usize::try_from(m.id).unwrap_or(0)] = m.clone();
        }
        locked.resync_slots(&ctx, &done).await?;
        tracing::info!(slots = done.len(), "offline slots assigned");
        Ok(true)
    }

    /// Picks the next slot for this round (an action already started first, then, unless
    /// disabled, the oldest pending one; none whose groups are in use this round) and brings
    /// it to `migrating`.
    async fn prepare_next_slot(
        &self,
        marks: &BTreeSet<i64>,
        plans: &BTreeSet<i64>,
    ) -> Result<Option<SlotMapping>> {
        let mut locked = self.lock().await?;
        let mut ctx = locked.context().await?;
        let accept = |m: &SlotMapping| {
            !marks.contains(&m.group_id)
                && !marks.contains(&m.action.target_id)
                && !plans.contains(&m.id)
        };
        let oldest = |started: bool| {
            ctx.slots
                .iter()
                .filter(|m| !m.action.state.is_empty())
                .filter(|m| (m.action.state != action::PENDING) == started)
                .filter(|m| accept(m))
                .min_by_key(|m| m.action.index)
                .cloned()
        };
        let picked = oldest(true).or_else(|| {
            if self.action.disabled.load(Ordering::Acquire) {
                None
            } else {
                oldest(false)
            }
        });
        let Some(mut m) = picked else {
            return Ok(None);
        };
        let idx = usize::try_from(m.id).unwrap_or(0);
        if m.action.state == action::PENDING {
            m.action.state = action::PREPARING.into();
            locked.store_slot(&m).await?;
            ctx.slots[idx] = m.clone();
        }
        if m.action.state == action::PREPARING {
            // Every proxy must lock the slot (and drain what it sent to the source) before any
            // proxy starts migration-aware forwarding.
            m.action.state = action::PREPARED.into();
            ctx.slots[idx] = m.clone();
            if let Err(e) = locked.resync_slots(&ctx, std::slice::from_ref(&m)).await {
                m.action.state = action::PREPARING.into();
                ctx.slots[idx] = m.clone();
                let _ = locked.resync_slots(&ctx, std::slice::from_ref(&m)).await;
                return Err(e);
            }
            // Beyond Codis, one write less per slot: `prepared` is not stored. A dashboard
            // that dies before `migrating` is stored finds `preparing` and pushes prepared and
            // migrating again, which is what it would do from a stored `prepared` anyway
            // (no key moves before `migrating` is stored).
        }
        if m.action.state == action::PREPARED {
            m.action.state = action::MIGRATING.into();
            ctx.slots[idx] = m.clone();
            locked.resync_slots(&ctx, std::slice::from_ref(&m)).await?;
            locked.store_slot(&m).await?;
        }
        match m.action.state.as_str() {
            action::MIGRATING | action::FINISHED => Ok(Some(m)),
            other => invalid!("slot-[{}] action state '{other}' is invalid", m.id),
        }
    }

    /// Moves every key of one slot, database by database, then completes the action.
    async fn process_slot(&self, sid: i64) -> Result<()> {
        let mut db = 0i64;
        let mut client: Option<(String, RedisClient, i64)> = None;
        let mut moved_total = 0i64;
        while self.is_online() {
            let view = self.lock().await?.executor_view(sid).await?;
            let m = view.mapping;
            match m.action.state.as_str() {
                action::FINISHED => return self.complete_slot(sid).await,
                action::MIGRATING => {}
                other => return invalid!("slot-[{sid}] action state '{other}' is invalid"),
            }
            if self.action.disabled.load(Ordering::Acquire) || view.promoting {
                if !self.sleep(Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
            let (from, dest) = (view.from, view.dest);
            if from.is_empty() {
                // The slot was offline: nothing to move.
                return self.complete_slot(sid).await;
            }
            self.action.executor.fetch_add(1, Ordering::AcqRel);
            let step = self.migrate_step(&mut client, &from, &dest, sid, db).await;
            self.action.executor.fetch_sub(1, Ordering::AcqRel);
            let step = step?;
            match step {
                Step::Done => return self.complete_slot(sid).await,
                Step::NextDb(next) => db = next,
                Step::More { moved, remaining } => {
                    moved_total += moved;
                    *self.action.progress.lock() =
                        format!("[OK] Slot[{sid:04}]@DB[{db}]={remaining}");
                    self.action.migrating.lock().insert(
                        sid,
                        SlotMigration {
                            id: sid,
                            from: m.group_id,
                            to: m.action.target_id,
                            remaining,
                            moved: moved_total,
                        },
                    );
                    let us = self.action.interval.load(Ordering::Acquire);
                    if us > 0 {
                        tokio::time::sleep(Duration::from_micros(u64::try_from(us).unwrap_or(0)))
                            .await;
                    }
                }
            }
        }
        Err(DashboardError::Closed)
    }

    /// One migration call on the source master, then, when the database is empty, the next
    /// database that has keys.
    async fn migrate_step(
        &self,
        client: &mut Option<(String, RedisClient, i64)>,
        from: &str,
        dest: &str,
        sid: i64,
        db: i64,
    ) -> Result<Step> {
        let timeout = self.config.migration_timeout.get();
        if client.as_ref().is_none_or(|(addr, _, _)| addr != from) {
            let c = RedisClient::connect(
                from,
                &self.config.product_auth,
                timeout + Duration::from_secs(5),
            )
            .await?;
            *client = Some((from.to_string(), c, -1));
        }
        let (_, c, selected) = client.as_mut().expect("connected above");
        if *selected != db {
            c.call(&[b"SELECT", db.to_string().as_bytes()]).await?;
            *selected = db;
        }
        let (host, port) = dest
            .rsplit_once(':')
            .ok_or_else(|| DashboardError::Invalid(format!("bad target address {dest}")))?;
        let sid_text = sid.to_string();
        let reply = if self.config.forward_method() == forward_method::SYNC {
            let ms = timeout.as_millis().to_string();
            c.call(&[
                b"SLOTSMGRTTAGSLOT",
                host.as_bytes(),
                port.as_bytes(),
                ms.as_bytes(),
                sid_text.as_bytes(),
            ])
            .await?
        } else {
            let ms = timeout.min(Duration::from_secs(5)).as_millis().to_string();
            let bulks = self.config.migration_async_maxbulks.to_string();
            let bytes = self.config.migration_async_maxbytes.as_u64().to_string();
            let keys = self.config.migration_async_numkeys.to_string();
            c.call(&[
                b"SLOTSMGRTTAGSLOT-ASYNC",
                host.as_bytes(),
                port.as_bytes(),
                ms.as_bytes(),
                bulks.as_bytes(),
                bytes.as_bytes(),
                sid_text.as_bytes(),
                keys.as_bytes(),
            ])
            .await?
        };
        let pair: Option<(i64, i64)> = match reply.as_array() {
            Some([a, b]) => a.as_int().zip(b.as_int()),
            _ => None,
        };
        let Some((moved, remaining)) = pair else {
            return Err(c
                .protocol(&format!("invalid migration reply {reply:?}"))
                .into());
        };
        if remaining > 0 {
            return Ok(Step::More { moved, remaining });
        }
        let keyspace = c.info(Some("keyspace")).await?;
        let next = keyspace
            .keys()
            .filter_map(|k| k.strip_prefix("db")?.parse::<i64>().ok())
            .filter(|&i| i > db)
            .min();
        Ok(next.map_or(Step::Done, Step::NextDb))
    }

    /// migrating → finished (pushed to the proxies) → the final mapping on the target.
    async fn complete_slot(&self, sid: i64) -> Result<()> {
        let mut locked = self.lock().await?;
        let mut ctx = locked.context().await?;
        let mut m = ctx.slot(sid)?.clone();
        let idx = usize::try_from(sid).unwrap_or(0);
        if m.action.state == action::MIGRATING {
            // Every key is on the target: the proxies stop forwarding through the source.
            // Beyond Codis, `finished` is not stored (one write less per slot): a dashboard
            // that dies before the final mapping is stored finds `migrating`, sees the
            // source empty and completes again.
            m.action.state = action::FINISHED.into();
            ctx.slots[idx] = m.clone();
            locked.resync_slots(&ctx, std::slice::from_ref(&m)).await?;
        }
        if m.action.state != action::FINISHED {
            return invalid!("slot-[{sid}] action state '{}' is invalid", m.action.state);
        }
        let done = SlotMapping {
            id: sid,
            group_id: m.action.target_id,
            action: SlotAction::default(),
        };
        locked.store_slot(&done).await?;
        ctx.slots[idx] = done.clone();
        // Beyond Codis: push the idle view too, so replica reads of the slot resume (it only
        // differs from the finished view when the group has replicas serving reads).
        let has_readers = !ctx.view().replica_groups(done.group_id, None).is_empty();
        if has_readers && let Err(e) = locked.resync_slots(&ctx, std::slice::from_ref(&done)).await
        {
            tracing::warn!(slot = sid, error = %e, "resync after migration failed; proxies keep the finished view");
        }
        tracing::info!(slot = sid, group = done.group_id, "slot migrated");
        Ok(())
    }
}

/// The slots of a context with an action, for stats.
pub fn pending_actions(ctx: &Context) -> i64 {
    ctx.slots
        .iter()
        .filter(|m| !m.action.state.is_empty())
        .count() as i64
}
