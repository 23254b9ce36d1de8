//! Flows: the editable draft, the immutable published versions and the status (issue 3's
//! lifecycle). Runs keep the version they entered, so a published version is never changed.

use crate::db::begin_write;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;
use serde_json::Value as Json;
use tabiji_model::Op;
use tabiji_model::flow::{ALL_CONTACTS, CONTACTS, Flow, FlowError};

use crate::entities::{flow, flow_version};
use crate::error::{ItemError, Result, StorageError};
use crate::{Principal, Store};

/// The name rights documents use for flows: `{"entities": {"flows": {"ops": ["view", "publish"]}}}`.
pub const FLOWS: &str = "flows";

#[derive(Debug, Clone, Serialize)]
pub struct FlowInfo {
    pub id: i64,
    pub name: String,
    /// `draft` (never published), `active`, `paused` or `stopped`.
    pub status: String,
    pub current_version: Option<i32>,
    pub updated_at: chrono::DateTime<Utc>,
    /// What stands between the draft and publishing; empty when it may be published.
    pub problems: Vec<FlowError>,
    pub draft: Json,
}

fn parse(definition: &Json) -> Result<Flow> {
    serde_json::from_value(definition.clone()).map_err(|e| {
        StorageError::invalid(ItemError {
            index: None,
            field: None,
            code: "invalid_flow",
            message: format!("not a flow of format 1: {e}"),
        })
    })
}

fn info(model: flow::Model) -> FlowInfo {
    let draft: Json = serde_json::from_str(&model.draft).unwrap_or(Json::Null);
    let problems = serde_json::from_value::<Flow>(draft.clone())
        .map(|f| f.validate())
        .unwrap_or_default();
    FlowInfo {
        id: model.id,
        name: model.name,
        status: model.status,
        current_version: model.current_version,
        updated_at: model.updated_at,
        problems,
        draft,
    }
}

async fn find(store: &Store, id: i64) -> Result<flow::Model> {
    flow::Entity::find_by_id(id)
        .one(&store.db().conn)
        .await?
        .ok_or(StorageError::NotFound {
            entity: FLOWS.into(),
            id,
        })
}

/// Saves a new draft. It must be a flow in shape; problems that stop publishing are reported
/// with it, not refused, so work in progress can be saved.
pub async fn create(store: &Store, who: &Principal, definition: &Json) -> Result<FlowInfo> {
    store.require(who, FLOWS, Op::Create).await?;
    let parsed = parse(definition)?;
    let now = Utc::now();
    let model = flow::ActiveModel {
        name: Set(parsed.name.clone()),
        draft: Set(definition.to_string()),
        status: Set("draft".into()),
        current_version: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&store.db().conn)
    .await?;
    store
        .log(
            who,
            "create",
            FLOWS,
            Some(model.id),
            "ok",
            Some(parsed.name),
        )
        .await?;
    Ok(info(model))
}

pub async fn update_draft(
    store: &Store,
    who: &Principal,
    id: i64,
    definition: &Json,
) -> Result<FlowInfo> {
    store.require(who, FLOWS, Op::Edit).await?;
    let parsed = parse(definition)?;
    let mut model = find(store, id).await?.into_active_model();
    model.name = Set(parsed.name);
    model.draft = Set(definition.to_string());
    model.updated_at = Set(Utc::now());
    let model = model.update(&store.db().conn).await?;
    store.log(who, "edit", FLOWS, Some(id), "ok", None).await?;
    Ok(info(model))
}

pub async fn get(store: &Store, who: &Principal, id: i64) -> Result<FlowInfo> {
    store.require(who, FLOWS, Op::View).await?;
    Ok(info(find(store, id).await?))
}

pub async fn list(store: &Store, who: &Principal) -> Result<Vec<FlowInfo>> {
    store.require(who, FLOWS, Op::View).await?;
    Ok(flow::Entity::find()
        .order_by_asc(flow::Column::Id)
        .all(&store.db().conn)
        .await?
        .into_iter()
        .map(info)
        .collect())
}

/// Publishes the draft as the next immutable version and makes the flow active.
pub async fn publish(store: &Store, who: &Principal, id: i64) -> Result<FlowInfo> {
    store.require(who, FLOWS, Op::Publish).await?;
    // A published flow runs for every contact its entry selects, whoever's they are.
    store
        .require_every_record(who, tabiji_model::flow::CONTACTS, "publishing a flow")
        .await?;
    let txn = begin_write(&store.db().conn).await?;
    let model = flow::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(StorageError::NotFound {
            entity: FLOWS.into(),
            id,
        })?;
    let draft: Json = serde_json::from_str(&model.draft).unwrap_or(Json::Null);
    let parsed = parse(&draft)?;
    let mut problems = parsed.validate();
    if let Some(segment) = parsed.entry.segment()
        && segment != ALL_CONTACTS
    {
        match crate::segments::definitions(store.db()).await?.get(segment) {
            None => problems.push(FlowError {
                at: "entry".into(),
                code: "unknown_segment",
                message: format!(
                    "there is no segment {segment:?}; save it first, or use \"{ALL_CONTACTS}\" \
                     for every contact"
                ),
            }),
            Some((entity, _)) if entity != CONTACTS => problems.push(FlowError {
                at: "entry".into(),
                code: "wrong_entity",
                message: format!("segment {segment:?} holds {entity}; flows send to {CONTACTS}"),
            }),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(StorageError::Invalid(
            problems.into_iter().map(ItemError::from).collect(),
        ));
    }
    if model.status == "stopped" {
        return Err(StorageError::invalid(ItemError {
            index: None,
            field: Some("status".into()),
            code: "stopped",
            message: "a stopped flow is not published again; copy it into a new flow".into(),
        }));
    }
    let version = model.current_version.unwrap_or(0) + 1;
    let now = Utc::now();
    flow_version::ActiveModel {
        flow_id: Set(id),
        version: Set(version),
        definition: Set(model.draft.clone()),
        published_at: Set(now),
        published_by: Set(who.login.clone()),
    }
    .insert(&txn)
    .await?;
    let mut active = model.into_active_model();
    active.current_version = Set(Some(version));
    active.status = Set("active".into());
    active.updated_at = Set(now);
    let model = active.update(&txn).await?;
    txn.commit().await?;
    store
        .log(
            who,
            "publish",
            FLOWS,
            Some(id),
            "ok",
            Some(format!("version {version}")),
        )
        .await?;
    Ok(info(model))
}

/// A published version exactly as it was published.
pub async fn version(store: &Store, who: &Principal, id: i64, version: i32) -> Result<Json> {
    store.require(who, FLOWS, Op::View).await?;
    let found = flow_version::Entity::find()
        .filter(flow_version::Column::FlowId.eq(id))
        .filter(flow_version::Column::Version.eq(version))
        .one(&store.db().conn)
        .await?
        .ok_or(StorageError::NotFound {
            entity: format!("{FLOWS} {id} version"),
            id: i64::from(version),
        })?;
    Ok(serde_json::from_str(&found.definition).unwrap_or(Json::Null))
}

/// Pauses, resumes or stops a published flow.
pub async fn set_status(store: &Store, who: &Principal, id: i64, wanted: &str) -> Result<FlowInfo> {
    store.require(who, FLOWS, Op::Publish).await?;
    store
        .require_every_record(
            who,
            tabiji_model::flow::CONTACTS,
            "changing a flow's status",
        )
        .await?;
    let model = find(store, id).await?;
    let allowed = matches!(
        (model.status.as_str(), wanted),
        ("active", "paused") | ("paused", "active") | ("active" | "paused", "stopped")
    );
    if !allowed {
        return Err(StorageError::invalid(ItemError {
            index: None,
            field: Some("status".into()),
            code: "invalid_transition",
            message: format!(
                "a {} flow cannot become {wanted}; published flows can be paused, resumed (active) and stopped",
                model.status
            ),
        }));
    }
    let mut active = model.into_active_model();
    active.status = Set(wanted.to_string());
    active.updated_at = Set(Utc::now());
    let model = active.update(&store.db().conn).await?;
    store
        .log(
            who,
            "publish",
            FLOWS,
            Some(id),
            "ok",
            Some(format!("status {wanted}")),
        )
        .await?;
    Ok(info(model))
}
