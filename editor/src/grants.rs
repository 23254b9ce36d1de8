//! What the users and rights screen changes in a rights document, pure: operations granted
//! and withdrawn, field access set or left to the entity's default, and targets with nothing
//! left on them dropped so the document holds only what was granted.

use tabiji_model::rights::EntityRights;
use tabiji_model::{FieldAccess, Op, Rights};

/// Grants (`on`) or withdraws `op` on `target`.
pub fn set_op(rights: &mut Rights, target: &str, op: Op, on: bool) {
    let entry = rights.entities.entry(target.to_string()).or_default();
    if on {
        entry.ops.insert(op);
    } else {
        entry.ops.remove(&op);
    }
    tidy(rights, target);
}

/// Whether `op` is granted on `target` by this document itself.
pub fn has_op(rights: &Rights, target: &str, op: Op) -> bool {
    rights
        .entities
        .get(target)
        .is_some_and(|e| e.ops.contains(&op))
}

/// Sets a field's access; `None` leaves it to the entity's default.
pub fn set_field(rights: &mut Rights, entity: &str, field: &str, access: Option<FieldAccess>) {
    let entry = rights.entities.entry(entity.to_string()).or_default();
    match access {
        Some(access) => {
            entry.fields.insert(field.to_string(), access);
        }
        None => {
            entry.fields.remove(field);
        }
    }
    tidy(rights, entity);
}

/// The access of fields the entity's rules do not name.
pub fn set_default_access(rights: &mut Rights, entity: &str, access: FieldAccess) {
    rights
        .entities
        .entry(entity.to_string())
        .or_default()
        .default_field_access = access;
    tidy(rights, entity);
}

/// A field's own rule (`None`: the entity's default) and the entity's default.
pub fn field_rule(
    rights: &Rights,
    entity: &str,
    field: &str,
) -> (Option<FieldAccess>, FieldAccess) {
    match rights.entities.get(entity) {
        Some(e) => (e.fields.get(field).copied(), e.default_field_access),
        None => (None, FieldAccess::Edit),
    }
}

/// How field access is written in the rights document and the screen's lists.
pub fn access_name(access: FieldAccess) -> &'static str {
    match access {
        FieldAccess::None => "none",
        FieldAccess::Read => "read",
        FieldAccess::Edit => "edit",
    }
}

pub fn parse_access(name: &str) -> Option<FieldAccess> {
    match name {
        "none" => Some(FieldAccess::None),
        "read" => Some(FieldAccess::Read),
        "edit" => Some(FieldAccess::Edit),
        _ => None,
    }
}

/// Drops `target` when it grants nothing and narrows nothing.
fn tidy(rights: &mut Rights, target: &str) {
    if rights
        .entities
        .get(target)
        .is_some_and(|e| *e == EntityRights::default())
    {
        rights.entities.remove(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_come_and_go_and_empty_targets_leave() {
        let mut rights = Rights::default();
        set_op(&mut rights, "tourists", Op::View, true);
        set_op(&mut rights, "tourists", Op::Export, true);
        set_op(&mut rights, "sql", Op::View, true);
        assert!(has_op(&rights, "tourists", Op::Export));
        assert_eq!(
            serde_json::to_value(&rights).unwrap(),
            serde_json::json!({"admin": false, "entities": {
                "sql": {"ops": ["view"], "default_field_access": "edit", "fields": {}},
                "tourists": {"ops": ["view", "export"], "default_field_access": "edit", "fields": {}}}})
        );
        set_op(&mut rights, "sql", Op::View, false);
        assert!(!rights.entities.contains_key("sql"), "nothing left on sql");
        set_op(&mut rights, "tourists", Op::Export, false);
        assert!(rights.allows("tourists", Op::View));
    }

    #[test]
    fn field_rules_fall_back_to_the_default_and_keep_a_target_alive() {
        let mut rights = Rights::default();
        set_field(&mut rights, "tourists", "phone", Some(FieldAccess::None));
        assert_eq!(
            field_rule(&rights, "tourists", "phone"),
            (Some(FieldAccess::None), FieldAccess::Edit)
        );
        assert!(
            rights.entities.contains_key("tourists"),
            "a rule without ops stays"
        );
        set_default_access(&mut rights, "tourists", FieldAccess::Read);
        assert_eq!(
            field_rule(&rights, "tourists", "email"),
            (None, FieldAccess::Read)
        );
        set_field(&mut rights, "tourists", "phone", None);
        set_default_access(&mut rights, "tourists", FieldAccess::Edit);
        assert!(rights.entities.is_empty());
        for access in [FieldAccess::None, FieldAccess::Read, FieldAccess::Edit] {
            assert_eq!(parse_access(access_name(access)), Some(access));
        }
        assert_eq!(parse_access("default"), None);
    }
}
