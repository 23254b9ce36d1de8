//! Who may do what: operations per entity and access per field (CF-2, CF-11).
//!
//! Rights are granted, never denied: a user's rights are the union of their roles' rights and
//! their own. A field a user may not view is absent from every answer they get.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRights {
    #[serde(default)]
    pub ops: BTreeSet<Op>,
    /// Access to fields not named in `fields`.
    #[serde(default = "edit")]
    pub default_field_access: FieldAccess,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldAccess>,
}

impl Default for EntityRights {
    fn default() -> Self {
        EntityRights {
            ops: BTreeSet::new(),
            default_field_access: FieldAccess::Edit,
            fields: BTreeMap::new(),
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

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
                    ours.ops.extend(theirs.ops.iter().copied());
                }
            }
        }
        self
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
    }
}
