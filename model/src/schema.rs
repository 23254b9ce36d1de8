//! The entities tabiji keeps, their built-in fields, and the rules for operator-defined ones.

use serde::{Deserialize, Serialize};

use crate::field::{FieldDef, FieldType, Label};

/// Custom fields an operator may add to one entity (DM-7).
pub const MAX_CUSTOM_FIELDS: usize = 100;

/// What an entity is, which decides the behaviour beyond plain records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Tourists,
    Businesses,
    Inquiries,
    InquiryResponses,
    Interactions,
    Purchases,
    /// Point grants and uses; append-only, and each row moves the tourist's balance.
    PointLedger,
    /// An operator-defined time series linked to a tourist (DM-8).
    CustomHistory,
}

/// A record's owner: the field that holds the owning record's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parent {
    pub entity: String,
    pub field: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySchema {
    /// The API name, which is also the table name.
    pub name: String,
    pub label: Label,
    pub kind: EntityKind,
    pub parent: Option<Parent>,
    /// Rows are never edited once written; corrections are new rows.
    pub append_only: bool,
    /// The time-series field of a history store, used for ordering.
    pub time_field: Option<String>,
    pub fields: Vec<FieldDef>,
}

impl EntitySchema {
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }

    pub fn custom_field_count(&self) -> usize {
        self.fields.iter().filter(|f| !f.builtin).count()
    }
}

/// Column names every entity table has, maintained by tabiji.
pub const SYSTEM_FIELDS: [&str; 3] = ["id", "created_at", "updated_at"];

/// Checks the name an operator gives a custom field or history store.
pub fn check_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!(
            "{name:?} must start with a-z and hold only a-z, 0-9 and _, at most 40 characters"
        ));
    }
    if ["sys_", "sqlite_", "pg_", "sqlout_", "tabiji_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
    {
        return Err(format!("{name:?} uses a prefix reserved for the system"));
    }
    if SYSTEM_FIELDS.contains(&name) {
        return Err(format!("{name:?} is reserved for the system"));
    }
    Ok(())
}

struct F(FieldDef);

impl F {
    fn new(key: &str, ja: &str, en: &str, ty: FieldType) -> Self {
        F(FieldDef {
            key: key.into(),
            label: Label {
                ja: ja.into(),
                en: en.into(),
            },
            ty,
            required: false,
            unique: false,
            nfkc: false,
            read_only: false,
            builtin: true,
            indexed: false,
        })
    }
    fn required(mut self) -> Self {
        self.0.required = true;
        self
    }
    fn unique(mut self) -> Self {
        self.0.unique = true;
        self
    }
    fn nfkc(mut self) -> Self {
        self.0.nfkc = true;
        self
    }
    fn indexed(mut self) -> Self {
        self.0.indexed = true;
        self
    }
    fn read_only(mut self) -> Self {
        self.0.read_only = true;
        self
    }
}

fn text(max: u32) -> FieldType {
    FieldType::Text { max_len: max }
}

fn schema(
    name: &str,
    ja: &str,
    en: &str,
    kind: EntityKind,
    parent: Option<(&str, &str)>,
    fields: Vec<F>,
) -> EntitySchema {
    EntitySchema {
        name: name.into(),
        label: Label {
            ja: ja.into(),
            en: en.into(),
        },
        kind,
        parent: parent.map(|(entity, field)| Parent {
            entity: entity.into(),
            field: field.into(),
        }),
        append_only: kind == EntityKind::PointLedger,
        time_field: None,
        fields: fields.into_iter().map(|f| f.0).collect(),
    }
}

const LANGUAGES: &[&str] = &[
    "ja", "en", "zh-Hans", "zh-Hant", "ko", "th", "vi", "fr", "de", "es", "other",
];
const PREFECTURES_NOTE: &str = "都道府県 / prefecture, or a region abroad";

pub fn tourists() -> EntitySchema {
    use FieldType as T;
    schema(
        "tourists",
        "観光客",
        "Tourists",
        EntityKind::Tourists,
        None,
        vec![
            F::new("email", "メールアドレス", "E-mail", T::Email)
                .required()
                .unique(),
            F::new("family_name", "姓", "Family name", text(50)),
            F::new("given_name", "名", "Given name", text(50)),
            F::new(
                "family_name_kana",
                "姓（カナ）",
                "Family name (kana)",
                text(50),
            )
            .nfkc(),
            F::new(
                "given_name_kana",
                "名（カナ）",
                "Given name (kana)",
                text(50),
            )
            .nfkc(),
            F::new(
                "gender",
                "性別",
                "Gender",
                T::single(&["female", "male", "other", "unanswered"]),
            ),
            F::new("birth_date", "生年月日", "Birth date", T::Date),
            F::new("postal_code", "郵便番号", "Postal code", T::PostalCode),
            F::new("prefecture", "都道府県", PREFECTURES_NOTE, text(20))
                .nfkc()
                .indexed(),
            F::new("city", "市区町村", "City", text(100)),
            F::new("address_line", "番地・建物", "Address", text(200)),
            F::new("phone", "電話番号", "Phone", T::Phone),
            F::new("mobile_phone", "携帯電話番号", "Mobile phone", T::Phone),
            F::new("nationality", "国籍", "Nationality", text(60)).nfkc(),
            F::new(
                "residence_country",
                "居住国",
                "Country of residence",
                text(60),
            )
            .nfkc(),
            F::new("language", "言語", "Language", T::single(LANGUAGES)),
            F::new(
                "member_type",
                "会員種別",
                "Member type",
                T::single(&["general", "premium", "partner", "staff"]),
            ),
            F::new(
                "registration_source",
                "登録元",
                "Registration source",
                text(60),
            ),
            F::new("registered_at", "登録日時", "Registered at", T::Timestamp),
            F::new("opt_in_email", "メール配信可", "E-mail opt-in", T::Boolean),
            F::new("opt_in_sms", "SMS配信可", "SMS opt-in", T::Boolean),
            F::new("opt_in_line", "LINE配信可", "LINE opt-in", T::Boolean),
            F::new("line_user_id", "LINEユーザーID", "LINE user id", text(64)),
            F::new(
                "points_balance",
                "ポイント残高",
                "Points balance",
                T::integer(),
            )
            .read_only(),
            F::new("first_visit_on", "初回来訪日", "First visit", T::Date),
            F::new("last_visit_on", "最終来訪日", "Last visit", T::Date),
            F::new(
                "visit_count",
                "来訪回数",
                "Visit count",
                T::Integer {
                    min: Some(0),
                    max: None,
                },
            ),
            F::new(
                "total_spend",
                "累計購入額",
                "Total spend (JPY)",
                T::Integer {
                    min: Some(0),
                    max: None,
                },
            ),
            F::new(
                "interests",
                "興味関心",
                "Interests",
                T::multi(&[
                    "nature",
                    "hot_springs",
                    "food",
                    "history",
                    "culture",
                    "shopping",
                    "outdoor",
                    "festivals",
                    "art",
                    "nightlife",
                ]),
            ),
            F::new(
                "travel_purpose",
                "旅行目的",
                "Travel purpose",
                T::single(&[
                    "leisure",
                    "business",
                    "visiting_friends",
                    "education",
                    "other",
                ]),
            ),
            F::new(
                "companions",
                "同行者",
                "Companions",
                T::single(&["solo", "couple", "family", "friends", "group", "business"]),
            ),
            F::new("occupation", "職業", "Occupation", text(60)),
            F::new("notes", "備考", "Notes", T::LongText),
        ],
    )
}

pub fn businesses() -> EntitySchema {
    use FieldType as T;
    schema(
        "businesses",
        "事業者",
        "Businesses",
        EntityKind::Businesses,
        None,
        vec![
            F::new("name", "事業者名", "Name", text(200)).required(),
            F::new("name_kana", "事業者名（カナ）", "Name (kana)", text(200)).nfkc(),
            F::new(
                "category",
                "業種",
                "Category",
                T::single(&[
                    "accommodation",
                    "restaurant",
                    "attraction",
                    "retail",
                    "transport",
                    "activity",
                    "travel_agency",
                    "other",
                ]),
            ),
            F::new("corporate_number", "法人番号", "Corporate number", text(13))
                .nfkc()
                .unique(),
            F::new(
                "representative_name",
                "代表者名",
                "Representative",
                text(100),
            ),
            F::new("contact_person", "担当者名", "Contact person", text(100)),
            F::new(
                "contact_person_kana",
                "担当者名（カナ）",
                "Contact person (kana)",
                text(100),
            )
            .nfkc(),
            F::new("email", "メールアドレス", "E-mail", T::Email),
            F::new("phone", "電話番号", "Phone", T::Phone),
            F::new("fax", "FAX番号", "Fax", T::Phone),
            F::new("postal_code", "郵便番号", "Postal code", T::PostalCode),
            F::new("prefecture", "都道府県", "Prefecture", text(20))
                .nfkc()
                .indexed(),
            F::new("city", "市区町村", "City", text(100)),
            F::new("address_line", "番地・建物", "Address", text(200)),
            F::new("area", "エリア", "Area", text(60)),
            F::new("website", "ウェブサイト", "Website", T::Url),
            F::new("opening_hours", "営業時間", "Opening hours", text(200)),
            F::new("regular_holidays", "定休日", "Regular holidays", text(200)),
            F::new(
                "capacity",
                "収容人数",
                "Capacity",
                T::Integer {
                    min: Some(0),
                    max: None,
                },
            ),
            F::new("languages", "対応言語", "Languages", T::multi(LANGUAGES)),
            F::new(
                "payment_methods",
                "決済手段",
                "Payment methods",
                T::multi(&["cash", "credit_card", "e_money", "qr_code", "ic_card"]),
            ),
            F::new("certifications", "認証・登録", "Certifications", text(500)),
            F::new(
                "membership_status",
                "会員区分",
                "Membership",
                T::single(&["member", "non_member", "former_member"]),
            ),
            F::new("membership_started_on", "入会日", "Member since", T::Date),
            F::new(
                "contract_started_on",
                "契約開始日",
                "Contract start",
                T::Date,
            ),
            F::new("contract_ends_on", "契約終了日", "Contract end", T::Date),
            F::new(
                "point_programme",
                "ポイント参加",
                "Point programme",
                T::Boolean,
            ),
            F::new("parking", "駐車場", "Parking", T::Boolean),
            F::new("barrier_free", "バリアフリー", "Barrier-free", T::Boolean),
            F::new("free_wifi", "無料Wi-Fi", "Free Wi-Fi", T::Boolean),
            F::new("notes", "備考", "Notes", T::LongText),
        ],
    )
}

fn reference(entity: &str) -> FieldType {
    FieldType::Reference {
        entity: entity.into(),
    }
}

const CHANNELS: &[&str] = &[
    "phone", "email", "web_form", "visit", "line", "letter", "other",
];
const INQUIRY_STATUS: &[&str] = &["open", "in_progress", "resolved", "closed"];

pub fn inquiries() -> EntitySchema {
    use FieldType as T;
    schema(
        "inquiries",
        "問い合わせ",
        "Inquiries",
        EntityKind::Inquiries,
        Some(("tourists", "tourist_id")),
        vec![
            F::new("tourist_id", "観光客", "Tourist", reference("tourists")).required(),
            F::new("subject", "件名", "Subject", text(200)).required(),
            F::new("body", "内容", "Body", T::LongText),
            F::new(
                "category",
                "分類",
                "Category",
                T::single(&[
                    "general",
                    "complaint",
                    "lost_item",
                    "booking",
                    "points",
                    "other",
                ]),
            ),
            F::new("channel", "受付経路", "Channel", T::single(CHANNELS)),
            F::new("status", "状態", "Status", T::single(INQUIRY_STATUS)),
            F::new("received_at", "受付日時", "Received at", T::Timestamp),
            F::new("assigned_staff", "担当者", "Assigned staff", text(100)),
        ],
    )
}

pub fn inquiry_responses() -> EntitySchema {
    use FieldType as T;
    let mut s = schema(
        "inquiry_responses",
        "問い合わせ対応履歴",
        "Inquiry responses",
        EntityKind::InquiryResponses,
        Some(("inquiries", "inquiry_id")),
        vec![
            F::new(
                "inquiry_id",
                "問い合わせ",
                "Inquiry",
                reference("inquiries"),
            )
            .required(),
            F::new("responded_at", "対応日時", "Responded at", T::Timestamp).required(),
            F::new("status", "状態", "Status", T::single(INQUIRY_STATUS)),
            F::new("channel", "対応経路", "Channel", T::single(CHANNELS)),
            F::new("staff", "対応者", "Staff", text(100)),
            F::new("body", "対応内容", "Response", T::LongText),
        ],
    );
    s.time_field = Some("responded_at".into());
    s
}

pub fn interactions() -> EntitySchema {
    use FieldType as T;
    let mut s = schema(
        "interactions",
        "事業者対応履歴",
        "Business interactions",
        EntityKind::Interactions,
        Some(("businesses", "business_id")),
        vec![
            F::new("business_id", "事業者", "Business", reference("businesses")).required(),
            F::new("occurred_at", "日時", "Occurred at", T::Timestamp).required(),
            F::new(
                "kind",
                "種別",
                "Kind",
                T::single(&[
                    "visit", "call", "email", "meeting", "contract", "invoice", "other",
                ]),
            ),
            F::new("subject", "件名", "Subject", text(200)).required(),
            F::new("body", "内容", "Details", T::LongText),
            F::new("staff", "担当者", "Staff", text(100)),
            F::new("amount", "金額", "Amount (JPY)", T::integer()),
            F::new("follow_up_on", "次回対応日", "Follow up on", T::Date),
        ],
    );
    s.time_field = Some("occurred_at".into());
    s
}

pub fn purchases() -> EntitySchema {
    use FieldType as T;
    let mut s = schema(
        "purchases",
        "購買履歴",
        "Purchases",
        EntityKind::Purchases,
        Some(("tourists", "tourist_id")),
        vec![
            F::new("tourist_id", "観光客", "Tourist", reference("tourists")).required(),
            F::new("occurred_at", "購入日時", "Purchased at", T::Timestamp).required(),
            F::new("amount", "金額", "Amount (JPY)", T::integer()).required(),
            F::new("product", "商品", "Product", text(200)),
            F::new(
                "product_category",
                "商品分類",
                "Product category",
                text(100),
            ),
            F::new("shop", "店舗", "Shop", text(200)),
            F::new(
                "quantity",
                "数量",
                "Quantity",
                T::Integer {
                    min: Some(0),
                    max: None,
                },
            ),
            F::new("source_system", "連携元", "Source system", text(60)),
            F::new("transaction_id", "取引ID", "Transaction id", text(100)),
        ],
    );
    s.time_field = Some("occurred_at".into());
    s
}

pub fn point_ledger() -> EntitySchema {
    use FieldType as T;
    let mut s = schema(
        "point_ledger",
        "ポイント履歴",
        "Point ledger",
        EntityKind::PointLedger,
        Some(("tourists", "tourist_id")),
        vec![
            F::new("tourist_id", "観光客", "Tourist", reference("tourists")).required(),
            F::new("occurred_at", "日時", "Occurred at", T::Timestamp).required(),
            F::new(
                "kind",
                "種別",
                "Kind",
                T::single(&["grant", "use", "expire", "adjust"]),
            )
            .required(),
            F::new(
                "points",
                "ポイント",
                "Points",
                T::Integer {
                    min: Some(1),
                    max: None,
                },
            )
            .required(),
            F::new("source_system", "連携元", "Source system", text(60)).required(),
            F::new("transaction_id", "取引ID", "Transaction id", text(100)).required(),
            F::new("reason", "理由", "Reason", text(200)),
            F::new("balance_after", "残高", "Balance after", T::integer()).read_only(),
        ],
    );
    s.time_field = Some("occurred_at".into());
    s
}

/// The built-in entities, parents before children (the order tables are created in).
pub fn builtin() -> Vec<EntitySchema> {
    vec![
        tourists(),
        businesses(),
        inquiries(),
        inquiry_responses(),
        interactions(),
        purchases(),
        point_ledger(),
    ]
}

/// A new operator-defined history store: linked to a tourist, with a time field; the
/// operator's own fields are added as custom fields.
pub fn custom_history(name: &str, label: Label) -> EntitySchema {
    let mut s = schema(
        name,
        "",
        "",
        EntityKind::CustomHistory,
        Some(("tourists", "tourist_id")),
        vec![
            F::new("tourist_id", "観光客", "Tourist", reference("tourists")).required(),
            F::new("occurred_at", "日時", "Occurred at", FieldType::Timestamp).required(),
        ],
    );
    s.label = label;
    s.time_field = Some("occurred_at".into());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn tourists_and_businesses_have_at_least_thirty_fields() {
        // DM-1 and DM-4 ask for 30 fields or more; ids and timestamps are not counted.
        assert!(tourists().fields.len() >= 30, "{}", tourists().fields.len());
        assert!(
            businesses().fields.len() >= 30,
            "{}",
            businesses().fields.len()
        );
    }

    #[test]
    fn field_keys_are_unique_and_valid_identifiers() {
        for entity in builtin() {
            let mut seen = BTreeSet::new();
            for f in &entity.fields {
                check_identifier(&f.key).unwrap();
                assert!(seen.insert(&f.key), "{}.{} twice", entity.name, f.key);
            }
        }
    }

    #[test]
    fn parents_come_before_children() {
        let all = builtin();
        for (i, entity) in all.iter().enumerate() {
            if let Some(parent) = &entity.parent {
                let at = all.iter().position(|e| e.name == parent.entity).unwrap();
                assert!(at < i, "{} before {}", parent.entity, entity.name);
                assert!(entity.field(&parent.field).unwrap().required);
            }
        }
    }

    #[test]
    fn reserved_names_are_refused() {
        assert!(check_identifier("sys_users").is_err());
        assert!(check_identifier("id").is_err());
        assert!(check_identifier("Favourite").is_err());
        assert!(check_identifier("favourite_onsen").is_ok());
    }
}
