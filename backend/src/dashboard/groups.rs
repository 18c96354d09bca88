//! Groups: create and remove them, add and remove servers (the first is the master, the
//! others replicate it), replica-group flags, resync, manual promotion (spec §6.7) and the
//! per-server sync (SLAVEOF) actions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use codis_model::topom::{Group, GroupServer, ServerAction, SlotMapping, action};

use super::error::{DashboardError, Result, invalid};
use super::topom::{Context, Locked, Topom};
use crate::redis::RedisClient;

/// Largest group id.
pub const MAX_GROUP_ID: i64 = 9999;

fn group_slots(ctx: &Context, gid: i64) -> Vec<SlotMapping> {
    ctx.slots
        .iter()
        .filter(|m| m.group_id == gid || m.action.target_id == gid)
        .cloned()
        .collect()
}

impl Locked<'_> {
    /// Marks the sentinels out of sync (after a change of a group's servers).
    async fn sentinel_out_of_sync(&mut self, ctx: &Context) -> Result<()> {
        if !ctx.sentinel.servers.is_empty() && !ctx.sentinel.out_of_sync {
            let mut s = ctx.sentinel.clone();
            s.out_of_sync = true;
            self.store_sentinel(&s).await?;
        }
        Ok(())
    }
}

impl Topom {
    /// `group/create/:gid`.
    ///
    /// # Errors
    /// Bad id, existing group; coordinator errors.
    pub async fn group_create(&self, gid: i64) -> Result<()> {
        if !(1..=MAX_GROUP_ID).contains(&gid) {
            return invalid!("invalid group id = {gid}, out of range");
        }
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        if ctx.groups.contains_key(&gid) {
            return invalid!("group-[{gid}] already exists");
        }
        let g = Group {
            id: gid,
            ..Group::default()
        };
        locked.store_group(&g).await
    }

    /// `group/remove/:gid`: only an empty group.
    ///
    /// # Errors
    /// Missing or non-empty group; coordinator errors.
    pub async fn group_remove(&self, gid: i64) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        if !ctx.group(gid)?.servers.is_empty() {
            return invalid!("group-[{gid}] isn't empty");
        }
        locked.remove_group(gid).await
    }

    /// `group/add/:gid/:addr[/:dc]`: probe the server (SLOTSINFO, so it must be a
    /// codis-server), then append it; the first server of a group is its master.
    ///
    /// # Errors
    /// Unreachable or non-codis server, address already used, group promoting; coordinator
    /// errors.
    pub async fn group_add_server(&self, gid: i64, dc: &str, addr: &str) -> Result<()> {
        if addr.is_empty() || !addr.contains(':') {
            return invalid!("invalid server address '{addr}'");
        }
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        if let Some((g, _)) = ctx.find_server(addr) {
            return invalid!("server-[{addr}] already exists in group-[{g}]");
        }
        let mut g = ctx.group(gid)?.clone();
        if !g.promoting.state.is_empty() {
            return invalid!("group-[{gid}] is promoting");
        }
        let mut c =
            RedisClient::connect(addr, &self.config.product_auth, Duration::from_secs(1)).await?;
        c.call(&[b"SLOTSINFO"]).await.map_err(|e| {
            DashboardError::Invalid(format!(
                "server-[{addr}] is not a codis-server (SLOTSINFO failed: {e})"
            ))
        })?;
        locked.sentinel_out_of_sync(&ctx).await?;
        // Beyond Codis: a replica gets its SLAVEOF queued at once (Codis waited for the
        // operator to press the button).
        let action = if g.servers.is_empty() {
            ServerAction::default()
        } else {
            ServerAction {
                index: ctx.max_sync_action_index() + 1,
                state: action::PENDING.into(),
            }
        };
        g.servers.push(GroupServer {
            addr: addr.to_string(),
            datacenter: dc.to_string(),
            action,
            replica_group: false,
        });
        locked.store_group(&g).await
    }

    /// `group/del/:gid/:addr`: a replica, or the master when it is the only server and no slot
    /// uses the group.
    ///
    /// # Errors
    /// Missing server, group promoting, master in use; coordinator errors.
    pub async fn group_del_server(&self, gid: i64, addr: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let mut g = ctx.group(gid)?.clone();
        if !g.promoting.state.is_empty() {
            return invalid!("group-[{gid}] is promoting");
        }
        let Some(index) = g.servers.iter().position(|s| s.addr == addr) else {
            return invalid!("group-[{gid}] doesn't have server-[{addr}]");
        };
        if index == 0 && (g.servers.len() != 1 || ctx.is_group_in_use(gid)) {
            return invalid!("group-[{gid}] can't remove master, still in use");
        }
        locked.sentinel_out_of_sync(&ctx).await?;
        if g.servers[index].replica_group {
            g.out_of_sync = true;
        }
        g.servers.remove(index);
        locked.store_group(&g).await
    }

    /// `group/replica-groups/:gid/:addr/:value`.
    ///
    /// # Errors
    /// Missing server; coordinator errors.
    pub async fn group_set_replica(&self, gid: i64, addr: &str, value: bool) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let mut g = ctx.group(gid)?.clone();
        let Some(s) = g.servers.iter_mut().find(|s| s.addr == addr) else {
            return invalid!("group-[{gid}] doesn't have server-[{addr}]");
        };
        s.replica_group = value;
        if g.servers.len() > 1 && ctx.is_group_in_use(gid) {
            g.out_of_sync = true;
        }
        locked.store_group(&g).await
    }

    /// `group/replica-groups-all/:value`.
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn group_set_replica_all(&self, value: bool) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        for g in ctx.groups.values() {
            let mut g = g.clone();
            let mut changed = false;
            for s in &mut g.servers {
                if s.replica_group != value {
                    s.replica_group = value;
                    changed = true;
                }
            }
            if changed {
                if g.servers.len() > 1 && ctx.is_group_in_use(g.id) {
                    g.out_of_sync = true;
                }
                locked.store_group(&g).await?;
            }
        }
        Ok(())
    }

    /// `group/resync/:gid`: push the group's slots to every proxy, clear out_of_sync.
    ///
    /// # Errors
    /// Missing group, a proxy failing; coordinator errors.
    pub async fn group_resync(&self, gid: i64) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let g = ctx.group(gid)?.clone();
        locked.resync_slots(&ctx, &group_slots(&ctx, gid)).await?;
        if g.out_of_sync {
            let mut g = g;
            g.out_of_sync = false;
            locked.store_group(&g).await?;
        }
        Ok(())
    }

    /// `group/resync-all`.
    ///
    /// # Errors
    /// A proxy failing; coordinator errors.
    pub async fn group_resync_all(&self) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        for g in ctx.groups.values() {
            locked.resync_slots(&ctx, &group_slots(&ctx, g.id)).await?;
            if g.out_of_sync {
                let mut g = g.clone();
                g.out_of_sync = false;
                locked.store_group(&g).await?;
            }
        }
        Ok(())
    }

    /// `group/promote/:gid/:addr`: make a replica the master (spec §6.7). Resumable: each
    /// step is stored before the next.
    ///
    /// # Errors
    /// A migration running, promoting the master, another promotion in progress; proxy or
    /// coordinator errors.
    pub async fn group_promote(&self, gid: i64, addr: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let mut ctx = locked.context().await?;
        let mut g = ctx.group(gid)?.clone();
        let Some(index) = g.servers.iter().position(|s| s.addr == addr) else {
            return invalid!("group-[{gid}] doesn't have server-[{addr}]");
        };
        if !g.promoting.state.is_empty() {
            if g.promoting.index != index as i64 {
                return invalid!("group-[{gid}] is promoting index = {}", g.promoting.index);
            }
        } else if index == 0 {
            return invalid!("group-[{gid}] can't promote master");
        }
        if self.action.executor.load(Ordering::Acquire) != 0 {
            return invalid!("slots-migration is running");
        }
        if g.promoting.state.is_empty() {
            g.promoting = ServerAction {
                index: index as i64,
                state: action::PREPARING.into(),
            };
            locked.store_group(&g).await?;
        }
        if g.promoting.state == action::PREPARING {
            g.promoting.state = action::PREPARED.into();
            ctx.groups.insert(gid, g.clone());
            let slots = group_slots(&ctx, gid);
            if let Err(e) = locked.resync_slots(&ctx, &slots).await {
                g.promoting.state = action::PREPARING.into();
                ctx.groups.insert(gid, g.clone());
                let _ = locked.resync_slots(&ctx, &slots).await;
                return Err(e);
            }
            locked.store_group(&g).await?;
        }
        if g.promoting.state == action::PREPARED {
            let promoted = usize::try_from(g.promoting.index).unwrap_or(0);
            if promoted >= g.servers.len() {
                return invalid!("group-[{gid}] promoting index {promoted} is out of range");
            }
            let mut servers = Vec::with_capacity(g.servers.len());
            servers.push(g.servers[promoted].clone());
            for (i, s) in g.servers.iter().enumerate() {
                if i != promoted && i != 0 {
                    servers.push(s.clone());
                }
            }
            if promoted != 0 {
                servers.push(g.servers[0].clone());
            }
            for s in &mut servers {
                s.action = ServerAction::default();
            }
            g.servers = servers;
            g.promoting.index = 0;
            g.promoting.state = action::FINISHED.into();
            locked.store_group(&g).await?;
            let master = g.master().to_string();
            if let Err(e) = self.slaveof(&master, "NO:ONE").await {
                tracing::warn!(server = %master, error = %e, "promote: SLAVEOF NO ONE failed");
            }
        }
        if g.promoting.state == action::FINISHED {
            g.promoting = ServerAction::default();
            g.out_of_sync = false;
            ctx.groups.insert(gid, g.clone());
            locked.resync_slots(&ctx, &group_slots(&ctx, gid)).await?;
            locked.store_group(&g).await?;
        }
        Ok(())
    }

    /// `group/action/create/:addr`: queue a SLAVEOF of the server to its group's master (or NO
    /// ONE for the master).
    ///
    /// # Errors
    /// Unknown server, action already there; coordinator errors.
    pub async fn sync_create_action(&self, addr: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let Some((gid, index)) = ctx.find_server(addr) else {
            return invalid!("server-[{addr}] doesn't exist");
        };
        let mut g = ctx.group(gid)?.clone();
        if !g.promoting.state.is_empty() {
            return invalid!("group-[{gid}] is promoting");
        }
        if g.servers[index].action.state == action::PENDING {
            return invalid!("server-[{addr}] action already exist");
        }
        g.servers[index].action = ServerAction {
            index: ctx.max_sync_action_index() + 1,
            state: action::PENDING.into(),
        };
        locked.store_group(&g).await
    }

    /// `group/action/remove/:addr`.
    ///
    /// # Errors
    /// Unknown server, an action running; coordinator errors.
    pub async fn sync_remove_action(&self, addr: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let Some((gid, index)) = ctx.find_server(addr) else {
            return invalid!("server-[{addr}] doesn't exist");
        };
        let mut g = ctx.group(gid)?.clone();
        if !g.promoting.state.is_empty() {
            return invalid!("group-[{gid}] is promoting");
        }
        if g.servers[index].action.state.is_empty() {
            return invalid!("server-[{addr}] action doesn't exist");
        }
        if g.servers[index].action.state == action::SYNCING {
            return invalid!("server-[{addr}] action is syncing");
        }
        g.servers[index].action = ServerAction::default();
        locked.store_group(&g).await
    }

    /// `MULTI; CONFIG SET masterauth; SLAVEOF host port; CONFIG REWRITE; CLIENT KILL TYPE
    /// normal; EXEC` on a server (`master` = `NO:ONE` to make it a master).
    ///
    /// # Errors
    /// Connection errors or an error reply of EXEC.
    pub async fn slaveof(&self, addr: &str, master: &str) -> Result<()> {
        let mut c =
            RedisClient::connect(addr, &self.config.product_auth, Duration::from_secs(5)).await?;
        c.set_timeout(Duration::from_secs(30 * 60));
        let (host, port) = master.rsplit_once(':').unwrap_or(("NO", "ONE"));
        let auth = self.config.product_auth.as_bytes().to_vec();
        let cmds: Vec<Vec<Vec<u8>>> = vec![
            vec![b"MULTI".to_vec()],
            vec![
                b"CONFIG".to_vec(),
                b"SET".to_vec(),
                b"masterauth".to_vec(),
                auth,
            ],
            vec![
                b"SLAVEOF".to_vec(),
                host.as_bytes().to_vec(),
                port.as_bytes().to_vec(),
            ],
            vec![b"CONFIG".to_vec(), b"REWRITE".to_vec()],
            vec![
                b"CLIENT".to_vec(),
                b"KILL".to_vec(),
                b"TYPE".to_vec(),
                b"normal".to_vec(),
            ],
            vec![b"EXEC".to_vec()],
        ];
        let replies = c.pipeline(&cmds).await?;
        if let Some(crate::redis::Value::Error(e)) = replies.last() {
            return invalid!("server-[{addr}] SLAVEOF {master} failed: {e}");
        }
        if let Some(crate::redis::Value::Array(Some(items))) = replies.last() {
            // CONFIG REWRITE fails on a server started without a config file; that is not
            // a failure of the SLAVEOF itself.
            if let Some(crate::redis::Value::Error(e)) = items.get(1) {
                return invalid!("server-[{addr}] SLAVEOF {master} failed: {e}");
            }
            // Not fatal either way, but a server that cannot rewrite its config comes back
            // from a restart with its old role (a replica as a master): say so.
            if let Some(crate::redis::Value::Error(e)) = items.get(2) {
                tracing::warn!(
                    server = %addr,
                    master = %master,
                    error = %e,
                    "CONFIG REWRITE failed after SLAVEOF: the server forgets its role when it \
                     restarts (can it write its config file?)"
                );
            }
        }
        Ok(())
    }

    /// The sync-action loop: run the oldest pending SLAVEOF, one at a time.
    pub async fn run_sync_actions(self: Arc<Self>) {
        while !self.is_closed() {
            let mut pause = Duration::from_secs(1);
            if self.is_online() {
                match self.process_sync_action().await {
                    Ok(true) => pause = Duration::from_millis(10),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "sync action failed");
                        pause = Duration::from_secs(5);
                    }
                }
            }
            if !self.sleep(pause).await {
                break;
            }
        }
    }

    async fn process_sync_action(&self) -> Result<bool> {
        let (addr, master) = {
            let mut locked = self.lock().await?;
            let ctx = locked.context().await?;
            let mut picked: Option<(i64, i64, usize)> = None;
            for g in ctx.groups.values().filter(|g| g.promoting.state.is_empty()) {
                for (i, s) in g.servers.iter().enumerate() {
                    if s.action.state == action::PENDING
                        && picked.is_none_or(|(_, idx, _)| s.action.index < idx)
                    {
                        picked = Some((g.id, s.action.index, i));
                    }
                }
            }
            let Some((gid, _, index)) = picked else {
                return Ok(false);
            };
            let mut g = ctx.group(gid)?.clone();
            g.servers[index].action.state = action::SYNCING.into();
            locked.store_group(&g).await?;
            let master = if index == 0 {
                "NO:ONE".to_string()
            } else {
                g.master().to_string()
            };
            (g.servers[index].addr.clone(), master)
        };
        let result = self.slaveof(&addr, &master).await;
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        if let Some((gid, index)) = ctx.find_server(&addr) {
            let mut g = ctx.group(gid)?.clone();
            if g.servers[index].action.state == action::SYNCING {
                g.servers[index].action.state = if result.is_ok() {
                    action::SYNCED
                } else {
                    action::SYNCED_FAILED
                }
                .into();
                locked.store_group(&g).await?;
            }
        }
        if let Err(e) = result {
            tracing::warn!(server = %addr, error = %e, "sync action failed");
        }
        Ok(true)
    }

    /// `group/info/:addr`: INFO of any server, plus `maxmemory` and `master_addr`.
    ///
    /// # Errors
    /// Connection or reply errors.
    pub async fn server_info(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>> {
        let mut c = RedisClient::connect(addr, &self.config.product_auth, timeout).await?;
        let mut info = c.info(None).await?;
        if let Ok(v) = c.call(&[b"CONFIG", b"GET", b"maxmemory"]).await
            && let Some([_, value]) = v.as_array()
            && let Some(text) = value.as_text()
        {
            info.insert("maxmemory".into(), text);
        }
        if let (Some(h), Some(p)) = (info.get("master_host"), info.get("master_port")) {
            let addr = format!("{h}:{p}");
            info.insert("master_addr".into(), addr);
        }
        Ok(info)
    }
}
