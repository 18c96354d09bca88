//! The `/api/v1` routes and their OpenAPI document come from one list: every route is added
//! through [`ApiRoutes`], which registers the handler and records its [`Doc`], so the router
//! and `/api/openapi.json` cannot drift apart. Request bodies name a schema in
//! [`schemas`]; a test checks that every name resolves and every documented route answers.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, delete, get, post, put};
use serde_json::{Map, Value, json};

use super::AppState;

/// What the document says about one route.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    /// One line.
    pub summary: &'static str,
    /// Query parameters (all optional).
    pub query: &'static [&'static str],
    /// Schema of the JSON body, if it takes one.
    pub body: Option<&'static str>,
    /// Schema of the 200 reply, if it is JSON with a known shape.
    pub reply: Option<&'static str>,
    /// The 200 reply may also be CSV.
    pub csv: bool,
}

impl Doc {
    /// A route with a summary.
    pub fn new(summary: &'static str) -> Self {
        Doc {
            summary,
            ..Doc::default()
        }
    }

    /// Its query parameters.
    pub fn query(mut self, q: &'static [&'static str]) -> Self {
        self.query = q;
        self
    }

    /// Its body schema.
    pub fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }

    /// The reply may be CSV too.
    pub fn also_csv(mut self) -> Self {
        self.csv = true;
        self
    }

    /// Its reply schema.
    pub fn reply(mut self, schema: &'static str) -> Self {
        self.reply = Some(schema);
        self
    }
}

/// One documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    /// `get`, `post`, `put` or `delete`.
    pub method: &'static str,
    /// Axum path, `{param}` style (the same as OpenAPI's).
    pub path: &'static str,
    /// Its description.
    pub doc: Doc,
}

/// A router that records what it routes.
#[derive(Debug)]
pub struct ApiRoutes {
    /// The routes so far.
    pub router: Router<AppState>,
    /// Their documents.
    pub docs: Vec<RouteDoc>,
}

impl Default for ApiRoutes {
    fn default() -> Self {
        ApiRoutes {
            router: Router::new(),
            docs: Vec::new(),
        }
    }
}

impl ApiRoutes {
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        mr: MethodRouter<AppState>,
        doc: Doc,
    ) -> Self {
        self.router = self.router.route(path, mr);
        self.docs.push(RouteDoc { method, path, doc });
        self
    }

    /// A GET route.
    pub fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
        doc: Doc,
    ) -> Self {
        self.add("get", path, get(h), doc)
    }

    /// A POST route.
    pub fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
        doc: Doc,
    ) -> Self {
        self.add("post", path, post(h), doc)
    }

    /// A PUT route.
    pub fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
        doc: Doc,
    ) -> Self {
        self.add("put", path, put(h), doc)
    }

    /// A DELETE route.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
        doc: Doc,
    ) -> Self {
        self.add("delete", path, delete(h), doc)
    }
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

const INTEGER_QUERY: &[&str] = &["since", "until", "before", "limit", "force"];

/// The OpenAPI 3.0 document of the recorded routes.
pub fn document(docs: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for d in docs {
        let mut params = Vec::new();
        for p in path_params(d.path) {
            let schema = if p == "gid" {
                json!({"type": "integer", "minimum": 0, "maximum": 9999})
            } else if p == "sid" {
                json!({"type": "integer", "minimum": 0, "maximum": 1023})
            } else if p == "id" {
                json!({"type": "integer", "minimum": 0})
            } else {
                json!({"type": "string", "minLength": 1, "maxLength": 256})
            };
            params.push(json!({"name": p, "in": "path", "required": true, "schema": schema}));
        }
        for q in d.doc.query {
            let schema = if INTEGER_QUERY.contains(q) {
                json!({"type": "integer", "minimum": 0})
            } else if *q == "metric" {
                json!({"type": "string", "enum": ["ops", "memory", "keys"]})
            } else if *q == "format" {
                json!({"type": "string", "enum": ["csv", "json"]})
            } else if *q == "outcome" {
                json!({"type": "string", "enum": ["ok", "error", "running"]})
            } else {
                json!({"type": "string"})
            };
            params.push(json!({"name": q, "in": "query", "required": false, "schema": schema}));
        }
        let error = json!({"description": "error", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
        let ok_schema = match d.doc.reply {
            Some(s) => json!({"$ref": format!("#/components/schemas/{s}")}),
            None => json!({}),
        };
        let mut responses = Map::new();
        let mut content = json!({"application/json": {"schema": ok_schema}});
        if d.doc.csv {
            content["text/csv"] = json!({"schema": {"type": "string"}});
        }
        responses.insert(
            "200".into(),
            json!({"description": "ok", "content": content}),
        );
        for status in [
            "400", "401", "403", "404", "409", "415", "422", "429", "500", "502", "503", "504",
        ] {
            responses.insert(status.into(), error.clone());
        }
        let mut op = json!({
            "operationId": format!("{}_{}", d.method, d.path.trim_start_matches("/api/v1/")
                .replace(['/', '{', '}', '-'], "_")),
            "summary": d.doc.summary,
            "parameters": params,
            "responses": responses,
        });
        if d.path == "/api/v1/session" && d.method == "post" {
            op["security"] = json!([]);
        }
        if let Some(body) = d.doc.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {
                "schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        let entry = paths
            .entry(d.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[d.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "codis-fe",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One REST API over every Codis product line: health, changes, users, \
                            roles, the audit history and isolation rules. Log in with POST \
                            /api/v1/session (then send X-CSRF-Token with changes) or send \
                            Authorization: Bearer <token>.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"cookieAuth": []}, {"bearerAuth": []}],
    })
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}

fn str_len(max: u64) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max})
}

/// Every named schema.
pub fn schemas() -> Value {
    let role = json!({"type": "string", "enum": ["viewer", "operator", "admin"]});
    let grant = obj(
        &["product", "role"],
        json!({"product": str_len(64), "role": role}),
    );
    let addr = json!({"type": "string", "minLength": 3, "maxLength": 256});
    let mut all = json!({
        "ErrorBody": obj(&["code", "message"], json!({
            "code": {"type": "string"}, "message": {"type": "string"}})),
        "LoginRequest": obj(&["username", "password"], json!({
            "username": {"type": "string", "maxLength": 1024},
            "password": {"type": "string", "maxLength": 4096}})),
        "Me": obj(&["username", "global_admin", "roles", "csrf_token"], json!({
            "username": {"type": "string"}, "global_admin": {"type": "boolean"},
            "roles": {"type": "array", "items": grant}, "csrf_token": {"type": "string"}})),
        "RoleGrant": grant,
        "UserCreate": obj(&["username", "password"], json!({
            "username": str_len(64), "password": {"type": "string", "minLength": 8, "maxLength": 1024},
            "roles": {"type": "array", "items": grant}, "global_admin": {"type": "boolean"}})),
        "UserUpdate": obj(&[], json!({
            "password": {"type": "string", "minLength": 8, "maxLength": 1024},
            "roles": {"type": "array", "items": grant}, "global_admin": {"type": "boolean"}})),
        "TokenCreate": obj(&["name", "role", "products"], json!({
            "name": str_len(64), "role": role,
            "products": {"type": "array", "items": str_len(64)}})),
        "ProductRegister": obj(&["name", "dashboard"], json!({
            "name": str_len(64), "dashboard": addr})),
        "IsolationSetting": obj(&["mode"], json!({
            "mode": {"type": "string", "enum": ["physical", "logical"]}})),
        "GroupCreate": obj(&["group_id"], json!({
            "group_id": {"type": "integer", "minimum": 1, "maximum": 9999}})),
        "ServerAdd": obj(&["addr"], json!({"addr": addr, "datacenter": {"type": "string", "maxLength": 64}})),
        "ServerRef": obj(&["addr"], json!({"addr": addr})),
        "ReplicaGroup": obj(&["addr", "enabled"], json!({"addr": addr, "enabled": {"type": "boolean"}})),
        "SyncAction": obj(&["addr", "action"], json!({"addr": addr,
            "action": {"type": "string", "enum": ["create", "remove"]}})),
        "ProxyCreate": obj(&["addr"], json!({"addr": addr})),
        "SlotRange": obj(&["begin", "end", "group_id"], json!({
            "begin": {"type": "integer", "minimum": 0, "maximum": 1023},
            "end": {"type": "integer", "minimum": 0, "maximum": 1023},
            "group_id": {"type": "integer", "minimum": 0, "maximum": 9999}})),
        "SlotsMoveSome": obj(&["from", "to", "count"], json!({
            "from": {"type": "integer", "minimum": 1, "maximum": 9999},
            "to": {"type": "integer", "minimum": 1, "maximum": 9999},
            "count": {"type": "integer", "minimum": 1, "maximum": 1024}})),
        "SlotActionSettings": obj(&[], json!({
            "disabled": {"type": "boolean"},
            "interval": {"type": "integer", "minimum": 0, "maximum": 1_000_000}})),
        "RebalancePlan": obj(&["plan"], json!({"plan": {"type": "object",
            "additionalProperties": {"type": "integer"}}})),
        "ReplicaGroupAll": obj(&["enabled"], json!({"enabled": {"type": "boolean"}})),
        "SentinelAdd": obj(&["addr"], json!({"addr": addr})),
        "ChangeDone": obj(&["ok", "audit_id"], json!({
            "ok": {"type": "boolean"}, "audit_id": {"type": "integer"}})),
        "ProductList": obj(&["products"], json!({"products": {"type": "array",
            "items": {"type": "object", "required": ["name", "reachable"], "properties": {
                "name": {"type": "string"}, "reachable": {"type": "boolean"}}}}})),
    });
    if let (Some(all), Value::Object(replies)) = (all.as_object_mut(), reply_schemas(&role, &grant))
    {
        all.extend(replies);
    }
    all
}

/// The schemas of replies.
fn reply_schemas(role: &Value, grant: &Value) -> Value {
    let nullable_int = json!({"type": "integer", "nullable": true});
    let nullable_str = json!({"type": "string", "nullable": true});
    let mode = json!({"type": "string", "enum": ["physical", "logical"]});
    let place = obj(
        &["product", "group_id", "role", "addr"],
        json!({"product": {"type": "string"}, "group_id": {"type": "integer"},
            "role": {"type": "string"}, "addr": {"type": "string"}}),
    );
    let audit_item = obj(
        &[
            "id",
            "time",
            "actor",
            "source",
            "product",
            "action",
            "target",
            "params",
            "outcome",
            "status",
            "duration_ms",
        ],
        json!({"id": {"type": "integer"}, "time": {"type": "integer"},
            "actor": {"type": "string"}, "source": {"type": "string"},
            "product": nullable_str, "action": {"type": "string"}, "target": nullable_str,
            "params": nullable_str, "outcome": nullable_str, "status": nullable_int,
            "duration_ms": nullable_int}),
    );
    let user = obj(
        &[
            "username",
            "global_admin",
            "roles",
            "created_at",
            "locked_until",
        ],
        json!({"username": {"type": "string"}, "global_admin": {"type": "boolean"},
            "roles": {"type": "array", "items": grant}, "created_at": {"type": "integer"},
            "locked_until": {"type": "integer"}}),
    );
    let token = obj(
        &["id", "name", "role", "products", "created_by", "created_at"],
        json!({"id": {"type": "integer"}, "name": {"type": "string"}, "role": role,
            "products": {"type": "array", "items": {"type": "string"}},
            "created_by": {"type": "string"}, "created_at": {"type": "integer"},
            "revoked_at": {"type": "integer"}}),
    );
    let point = obj(
        &["time", "value"],
        json!({"time": {"type": "integer"}, "value": {"type": "integer"}}),
    );
    let shared = obj(
        &["server", "places"],
        json!({"server": {"type": "string"}, "places": {"type": "array", "items": place}}),
    );
    let violation = obj(
        &["server", "rule", "message", "places"],
        json!({"server": {"type": "string"}, "rule": {"type": "string"},
            "message": {"type": "string"}, "places": {"type": "array", "items": place}}),
    );
    let run = obj(
        &["id", "what", "started_at", "total", "done"],
        json!({"id": {"type": "integer"}, "what": {"type": "string"},
            "started_at": {"type": "integer"}, "total": {"type": "integer"},
            "done": {"type": "integer"}, "finished_at": {"type": "integer"}}),
    );
    let migration = obj(
        &["pending", "running"],
        json!({"pending": {"type": "integer"}, "runs": {"type": "array", "items": run},
            "running": {"type": "array"}}),
    );
    json!({
        "AuditItem": audit_item.clone(),
        "AuditItems": {"type": "array", "items": audit_item},
        "AuditPage": obj(&["items", "total", "next_before"], json!({
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditItem"}},
            "total": {"type": "integer"}, "next_before": nullable_int})),
        "Ok": obj(&["ok"], json!({"ok": {"type": "boolean"}})),
        "User": user.clone(),
        "UserList": obj(&["users"], json!({"users": {"type": "array", "items": user}})),
        "TokenInfo": token.clone(),
        "TokenList": obj(&["tokens"], json!({"tokens": {"type": "array", "items": token}})),
        "TokenCreated": {"allOf": [
            {"$ref": "#/components/schemas/TokenInfo"},
            obj(&["token"], json!({"token": {"type": "string"}})),
        ]},
        "History": obj(&["metric", "points"], json!({"metric": {"type": "string"},
            "points": {"type": "array", "items": point}})),
        "IsolationReport": obj(&["modes", "shared", "violations"], json!({
            "modes": {"type": "object", "additionalProperties": mode},
            "shared": {"type": "array", "items": shared},
            "violations": {"type": "array", "items": violation},
            "unknown": {"type": "array", "items": {"type": "string"}}})),
        "ProductDetail": obj(&["summary", "migration"], json!({
            "summary": {"type": "object", "required": ["name", "reachable"]},
            "migration": migration, "topom": {"type": "object"}})),
    })
}

/// Names of the schemas a document references, for the consistency test.
pub fn referenced_schemas(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref"
                        && let Some(name) = v.as_str().and_then(|s| s.rsplit('/').next())
                    {
                        out.push(name.to_string());
                    }
                    walk(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(doc, &mut out);
    out.sort();
    out.dedup();
    out
}
