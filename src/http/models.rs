//! `GET /v1/models` and `GET /v1/models/{id}`: the configured models, or the key's own list
//! when it has one (`[[keys]] models`): a model the key may not use is not shown, and asking
//! for it is a 404, as OpenAI answers for a model "you do not have access to". The bodies are
//! built once ([`ModelLists`]).

use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::auth::Caller;
use super::AppState;
use crate::board::ModelId;
use crate::catalog::Catalog;
use crate::errors::ApiError;

/// The `/v1/models` body of every model; a key with its own list carries its body
/// ([`super::auth::ClientKey::models`]).
pub struct ModelLists {
    all: Bytes,
}

/// The `/v1/models` body of the models `allowed` names, and those models by model index.
/// `created` is the Unix time the gateway started (each model's `created`).
pub fn listing(
    catalog: &Catalog,
    allowed: &dyn Fn(&str) -> bool,
    created: u64,
) -> (Bytes, Box<[bool]>) {
    let data: Vec<_> = catalog
        .models()
        .filter(|(_, m)| allowed(&m.name))
        .map(|(_, m)| {
            serde_json::json!({
                "id": &*m.name, "object": "model", "created": created,
                "owned_by": &*m.owned_by,
            })
        })
        .collect();
    let body = Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string());
    let mask = catalog
        .all_models()
        .map(|(_, m)| !m.retired && allowed(&m.name))
        .collect();
    (body, mask)
}

impl ModelLists {
    /// `created` is the Unix time the gateway started (each model's `created`).
    pub fn new(catalog: &Catalog, created: u64) -> Self {
        Self {
            all: listing(catalog, &|_| true, created).0,
        }
    }

    fn of(caller: &Caller) -> Option<&(Bytes, Box<[bool]>)> {
        caller.key.as_ref()?.models.as_ref()
    }

    fn body(&self, caller: &Caller) -> Bytes {
        Self::of(caller).map_or_else(|| self.all.clone(), |(body, _)| body.clone())
    }

    fn allows(caller: &Caller, model: ModelId) -> bool {
        Self::of(caller).is_none_or(|(_, mask)| mask.get(model.index()).copied().unwrap_or(false))
    }
}

fn authorize(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    state.keys.authenticate(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        SystemTime::now(),
    )
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, &state)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(state.live().models.body(&caller)))
}

pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, &state)?;
    let live = state.live();
    let model = live
        .catalog
        .model_id(&id)
        .filter(|m| ModelLists::allows(&caller, *m))
        .map(|m| live.catalog.model(m))
        .ok_or_else(|| ApiError::ModelNotFound(id.chars().take(128).collect()))?;
    let body = serde_json::json!({
        "id": &*model.name,
        "object": "model",
        "created": state.started_unix,
        "owned_by": &*model.owned_by,
    });
    Ok(HttpResponse::Ok().json(body))
}
