//! Who may do what: operations per entity and access per field (CF-2, CF-11).
//!
//! Rights are granted, never denied: a user's rights are the union of their roles' rights and
//! their own. A field a user may not view is absent from every answer they get.
//!
//! Record-level rights narrow an entity to the records a filter matches (tourists of one area,
//! say). As with PostgreSQL's row security, the same filter decides what may be read and what
//! may be written: a record outside it cannot be seen, created, or changed into.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::filter::Filter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    View,
    Create,
    Edit,
    Delete,
    Import,
    Export,
    /// Define custom fields and history stores.
    Schema,
    /// Publish, pause, resume and stop flows.
    Publish,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::View,
        Op::Create,
        Op::Edit,
        Op::Delete,
        Op::Import,
        Op::Export,
        Op::Schema,
        Op::Publish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::View => "view",
            Op::Create => "create",
            Op::Edit => "edit",
            Op::Delete => "delete",
            Op::Import => "import",
            Op::Export => "export",
            Op::Schema => "schema",
            Op::Publish => "publish",
        }
    }
}

/// What rights are granted on besides the entities of the schema: saved work (flows, segments,
/// lists, reports, output tables, content, channel settings), the suppression list, and the
/// histories flows write (messages, events, runs). Each is enforced where it is kept.
pub const SYSTEM_TARGETS: [&str; 12] = [
    "flows",
    "segments",
    "lists",
    "reports",
    "sql",
    "templates",
    "snippets",
    "channels",
    "suppressions",
    "messages",
    "events",
    "runs",
];

/// Access to one field, ordered so that the larger grant wins when rights combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    None,
    Read,
    Edit,
}

fn edit() -> FieldAccess {
    FieldAccess::Edit
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityRights {
    #[serde(default)]
    pub ops: BTreeSet<Op>,
    /// Access to fields not named in `fields`.
    #[serde(default = "edit")]
    pub default_field_access: FieldAccess,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldAccess>,
    /// Only the records this filter matches; absent: every record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Filter>,
}

impl Default for EntityRights {
    fn default() -> Self {
        EntityRights {
            ops: BTreeSet::new(),
            default_field_access: FieldAccess::Edit,
            fields: BTreeMap::new(),
            records: None,
        }
    }
}

impl EntityRights {
    pub fn with_ops(ops: &[Op]) -> Self {
        EntityRights {
            ops: ops.iter().copied().collect(),
            ..Default::default()
        }
    }

    fn field(&self, key: &str) -> FieldAccess {
        self.fields
            .get(key)
            .copied()
            .unwrap_or(self.default_field_access)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rights {
    /// Administrators may do everything, including managing users and roles.
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub entities: BTreeMap<String, EntityRights>,
}

impl Rights {
    pub fn admin() -> Self {
        Rights {
            admin: true,
            entities: BTreeMap::new(),
        }
    }

    pub fn allows(&self, entity: &str, op: Op) -> bool {
        self.admin
            || self
                .entities
                .get(entity)
                .is_some_and(|e| e.ops.contains(&op))
    }

    /// Whether `op` is allowed on at least one entity (a screen of imports is offered to
    /// whoever may import into anything).
    pub fn allows_somewhere(&self, op: Op) -> bool {
        self.admin || self.entities.values().any(|e| e.ops.contains(&op))
    }

    /// What the holder may do with one field: never more than the entity's operations allow.
    pub fn field_access(&self, entity: &str, field: &str) -> FieldAccess {
        if self.admin {
            return FieldAccess::Edit;
        }
        let Some(rights) = self.entities.get(entity) else {
            return FieldAccess::None;
        };
        let ceiling = if rights.ops.contains(&Op::Edit) || rights.ops.contains(&Op::Create) {
            FieldAccess::Edit
        } else if rights.ops.contains(&Op::View) {
            FieldAccess::Read
        } else {
            FieldAccess::None
        };
        rights.field(field).min(ceiling)
    }

    pub fn can_view_field(&self, entity: &str, field: &str) -> bool {
        self.field_access(entity, field) >= FieldAccess::Read
    }

    pub fn can_write_field(&self, entity: &str, field: &str) -> bool {
        self.field_access(entity, field) == FieldAccess::Edit
    }

    /// The filter the holder's records of `entity` must match; `None` when they may reach every
    /// record (administrators, and grants without a record filter).
    pub fn records(&self, entity: &str) -> Option<&Filter> {
        if self.admin {
            return None;
        }
        self.entities.get(entity)?.records.as_ref()
    }

    /// The union of two grants: every operation either allows, and the larger access per field.
    pub fn merge(mut self, other: &Rights) -> Rights {
        self.admin |= other.admin;
        for (entity, theirs) in &other.entities {
            match self.entities.get_mut(entity) {
                None => {
                    self.entities.insert(entity.clone(), theirs.clone());
                }
                Some(ours) => {
                    let our_default = ours.default_field_access;
                    let keys: BTreeSet<String> = ours
                        .fields
                        .keys()
                        .chain(theirs.fields.keys())
                        .cloned()
                        .collect();
                    ours.fields = keys
                        .into_iter()
                        .map(|k| {
                            let a = ours.fields.get(&k).copied().unwrap_or(our_default);
                            let b = theirs.field(&k);
                            (k, a.max(b))
                        })
                        .collect();
                    ours.default_field_access = our_default.max(theirs.default_field_access);
                    ours.records = union_of_records(ours, theirs);
                    ours.ops.extend(theirs.ops.iter().copied());
                }
            }
        }
        self
    }
}

impl Rights {
    /// What both allow: how an API token's scope narrows its user's rights. Every operation both
    /// grant, the smaller access per field, and the records both filters match.
    pub fn intersect(&self, other: &Rights) -> Rights {
        if self.admin {
            return other.clone();
        }
        if other.admin {
            return self.clone();
        }
        let entities = self
            .entities
            .iter()
            .filter_map(|(entity, ours)| {
                let theirs = other.entities.get(entity)?;
                let keys: BTreeSet<&String> =
                    ours.fields.keys().chain(theirs.fields.keys()).collect();
                let records = match (&ours.records, &theirs.records) {
                    (Some(a), Some(b)) if a == b => Some(a.clone()),
                    (Some(a), Some(b)) => Some(Filter::All(vec![a.clone(), b.clone()])),
                    (a, b) => a.clone().or_else(|| b.clone()),
                };
                Some((
                    entity.clone(),
                    EntityRights {
                        ops: ours.ops.intersection(&theirs.ops).copied().collect(),
                        default_field_access: ours
                            .default_field_access
                            .min(theirs.default_field_access),
                        fields: keys
                            .into_iter()
                            .map(|k| (k.clone(), ours.field(k).min(theirs.field(k))))
                            .collect(),
                        records,
                    },
                ))
            })
            .collect();
        Rights {
            admin: false,
            entities,
        }
    }
}

/// The records either grant reaches. A grant of no operations reaches no record, so it does not
/// widen the other's filter to every record.
fn union_of_records(ours: &EntityRights, theirs: &EntityRights) -> Option<Filter> {
    if theirs.ops.is_empty() {
        return ours.records.clone();
    }
    if ours.ops.is_empty() {
        return theirs.records.clone();
    }
    match (&ours.records, &theirs.records) {
        (Some(a), Some(b)) if a == b => Some(a.clone()),
        (Some(a), Some(b)) => Some(Filter::Any(vec![a.clone(), b.clone()])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer_without_phone() -> Rights {
        let mut r = EntityRights::with_ops(&[Op::View]);
        r.fields.insert("phone".into(), FieldAccess::None);
        Rights {
            admin: false,
            entities: [("tourists".to_string(), r)].into(),
        }
    }

    #[test]
    fn field_access_is_capped_by_operations() {
        let rights = viewer_without_phone();
        assert_eq!(rights.field_access("tourists", "email"), FieldAccess::Read);
        assert_eq!(rights.field_access("tourists", "phone"), FieldAccess::None);
        assert_eq!(rights.field_access("businesses", "name"), FieldAccess::None);
        assert!(!rights.allows("tourists", Op::Edit));
        assert!(rights.allows_somewhere(Op::View));
        assert!(!rights.allows_somewhere(Op::Import));
        assert!(Rights::admin().allows_somewhere(Op::Import));
    }

    #[test]
    fn merge_takes_the_larger_grant() {
        let editor = Rights {
            admin: false,
            entities: [(
                "tourists".to_string(),
                EntityRights::with_ops(&[Op::View, Op::Edit]),
            )]
            .into(),
        };
        let merged = viewer_without_phone().merge(&editor);
        assert!(merged.allows("tourists", Op::Edit));
        assert_eq!(merged.field_access("tourists", "phone"), FieldAccess::Edit);

        let merged = Rights::default().merge(&viewer_without_phone());
        assert_eq!(merged.field_access("tourists", "phone"), FieldAccess::None);
    }

    fn scoped_rights(ops: &[Op], prefecture: Option<&str>) -> Rights {
        let mut r = EntityRights::with_ops(ops);
        r.records = prefecture.map(|p| {
            serde_json::from_value(
                serde_json::json!({"field": {"key": "prefecture", "op": "eq", "value": p}}),
            )
            .unwrap()
        });
        Rights {
            admin: false,
            entities: [("tourists".to_string(), r)].into(),
        }
    }

    #[test]
    fn record_filters_combine_as_a_union() {
        let aichi = scoped_rights(&[Op::View], Some("愛知県"));
        let gifu = scoped_rights(&[Op::View], Some("岐阜県"));
        let both = aichi.clone().merge(&gifu);
        assert!(matches!(both.records("tourists"), Some(Filter::Any(f)) if f.len() == 2));
        assert_eq!(
            aichi.clone().merge(&aichi).records("tourists"),
            aichi.records("tourists")
        );
        // A grant of every record widens any filter to every record…
        let all = scoped_rights(&[Op::View], None);
        assert_eq!(aichi.clone().merge(&all).records("tourists"), None);
        assert_eq!(all.merge(&aichi).records("tourists"), None);
        // …but a grant of no operation reaches no record, so it widens nothing.
        let nothing = scoped_rights(&[], None);
        assert_eq!(
            aichi.clone().merge(&nothing).records("tourists"),
            aichi.records("tourists")
        );
        assert_eq!(
            nothing.merge(&aichi).records("tourists"),
            aichi.records("tourists")
        );
        // Administrators reach every record whatever else they hold.
        assert_eq!(aichi.merge(&Rights::admin()).records("tourists"), None);
    }

    #[test]
    fn intersection_keeps_what_both_allow() {
        let editor = Rights {
            admin: false,
            entities: [
                (
                    "tourists".to_string(),
                    EntityRights::with_ops(&[Op::View, Op::Edit]),
                ),
                ("purchases".to_string(), EntityRights::with_ops(&[Op::View])),
            ]
            .into(),
        };
        let token = viewer_without_phone();
        let both = editor.intersect(&token);
        assert!(both.allows("tourists", Op::View));
        assert!(!both.allows("tourists", Op::Edit));
        assert!(
            !both.allows("purchases", Op::View),
            "the token leaves it out"
        );
        assert!(!both.can_view_field("tourists", "phone"));
        assert!(both.can_view_field("tourists", "email"));

        // An administrator's token holds what its scope says, and no more.
        let scoped = Rights::admin().intersect(&token);
        assert!(!scoped.admin);
        assert_eq!(scoped, token);
        assert_eq!(token.intersect(&Rights::admin()), token);

        // Record filters narrow each other.
        let aichi = scoped_rights(&[Op::View], Some("愛知県"));
        let gifu = scoped_rights(&[Op::View], Some("岐阜県"));
        assert!(
            matches!(aichi.intersect(&gifu).records("tourists"), Some(Filter::All(f)) if f.len() == 2)
        );
        let all = scoped_rights(&[Op::View], None);
        assert_eq!(
            all.intersect(&aichi).records("tourists"),
            aichi.records("tourists")
        );
    }

    #[test]
    fn admin_may_do_everything() {
        let admin = Rights::admin();
        assert!(Op::ALL.iter().all(|op| admin.allows("anything", *op)));
        assert!(admin.can_write_field("tourists", "phone"));
    }

    #[test]
    fn rights_json_shape() {
        let rights: Rights = serde_json::from_str(
            r#"{"entities":{"tourists":{"ops":["view","export"],"fields":{"phone":"none"}}}}"#,
        )
        .unwrap();
        assert!(rights.allows("tourists", Op::Export));
        assert!(!rights.can_view_field("tourists", "phone"));
        assert!(rights.can_view_field("tourists", "email"));
        assert_eq!(rights.records("tourists"), None);

        let narrowed: Rights = serde_json::from_str(
            r#"{"entities":{"tourists":{"ops":["view"],"records":{"field":{"key":"prefecture","op":"eq","value":"愛知県"}}}}}"#,
        )
        .unwrap();
        assert!(narrowed.records("tourists").is_some());
        let round_trip: Rights =
            serde_json::from_value(serde_json::to_value(&narrowed).unwrap()).unwrap();
        assert_eq!(round_trip, narrowed);
    }
}
