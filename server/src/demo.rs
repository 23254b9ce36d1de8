//! The deterministic demo data set: the same seed gives the same tourists, businesses and
//! histories on every machine, so screenshots, benchmarks and bug reports agree.

use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use tabiji_model::Op;
use tabiji_model::Rights;
use tabiji_model::content::ContentKind;
use tabiji_model::rights::{EntityRights, FieldAccess};
use tabiji_storage::auth::{self as users, NewUser};
use tabiji_storage::{Principal, StorageError, Store, content};

/// Records created per bulk call.
const BATCH: usize = 5_000;

/// SplitMix64: tiny, fast and the same everywhere, which is all demo data needs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const FAMILY: &[(&str, &str, &str)] = &[
    ("佐藤", "サトウ", "sato"),
    ("鈴木", "スズキ", "suzuki"),
    ("高橋", "タカハシ", "takahashi"),
    ("田中", "タナカ", "tanaka"),
    ("伊藤", "イトウ", "ito"),
    ("渡辺", "ワタナベ", "watanabe"),
    ("山本", "ヤマモト", "yamamoto"),
    ("中村", "ナカムラ", "nakamura"),
    ("小林", "コバヤシ", "kobayashi"),
    ("加藤", "カトウ", "kato"),
    ("吉田", "ヨシダ", "yoshida"),
    ("山田", "ヤマダ", "yamada"),
    ("佐々木", "ササキ", "sasaki"),
    ("山口", "ヤマグチ", "yamaguchi"),
    ("松本", "マツモト", "matsumoto"),
    ("井上", "イノウエ", "inoue"),
    ("木村", "キムラ", "kimura"),
    ("林", "ハヤシ", "hayashi"),
    ("清水", "シミズ", "shimizu"),
    ("森", "モリ", "mori"),
];

const GIVEN: &[(&str, &str, &str, &str)] = &[
    ("太郎", "タロウ", "taro", "male"),
    ("翔太", "ショウタ", "shota", "male"),
    ("大輔", "ダイスケ", "daisuke", "male"),
    ("健太", "ケンタ", "kenta", "male"),
    ("拓也", "タクヤ", "takuya", "male"),
    ("蓮", "レン", "ren", "male"),
    ("悠真", "ユウマ", "yuma", "male"),
    ("陽翔", "ハルト", "haruto", "male"),
    ("花子", "ハナコ", "hanako", "female"),
    ("美咲", "ミサキ", "misaki", "female"),
    ("陽菜", "ヒナ", "hina", "female"),
    ("結衣", "ユイ", "yui", "female"),
    ("さくら", "サクラ", "sakura", "female"),
    ("葵", "アオイ", "aoi", "female"),
    ("優子", "ユウコ", "yuko", "female"),
    ("真由美", "マユミ", "mayumi", "female"),
];

const PLACES: &[(&str, &str, &str)] = &[
    ("東京都", "新宿区", "160-0022"),
    ("大阪府", "大阪市北区", "530-0001"),
    ("愛知県", "名古屋市中区", "460-0008"),
    ("岐阜県", "高山市", "506-0011"),
    ("岐阜県", "岐阜市", "500-8001"),
    ("静岡県", "静岡市葵区", "420-0853"),
    ("神奈川県", "横浜市西区", "220-0011"),
    ("京都府", "京都市下京区", "600-8216"),
    ("福岡県", "福岡市博多区", "812-0011"),
    ("北海道", "札幌市中央区", "060-0001"),
    ("三重県", "伊勢市", "516-0037"),
    ("長野県", "松本市", "390-0811"),
];

const FOREIGN: &[(&str, &str)] = &[
    ("US", "en"),
    ("TW", "zh-Hant"),
    ("CN", "zh-Hans"),
    ("KR", "ko"),
    ("TH", "th"),
    ("FR", "fr"),
];
const SOURCES: &[&str] = &[
    "itinerary_planner",
    "ota",
    "eticket",
    "web",
    "event",
    "point_programme",
];
const INTERESTS: &[&str] = &[
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
];
const PRODUCTS: &[(&str, &str, i64)] = &[
    ("飛騨牛ランチ", "food", 3800),
    ("温泉入浴券", "hot_springs", 1200),
    ("さるぼぼ", "souvenir", 800),
    ("白川郷バスツアー", "tour", 6500),
    ("地酒セット", "souvenir", 4200),
    ("朝市の漬物", "food", 600),
    ("鵜飼観覧船", "activity", 3400),
    ("美術館入館券", "culture", 1000),
];
const BUSINESS_KINDS: &[(&str, &str)] = &[
    ("accommodation", "旅館"),
    ("restaurant", "食堂"),
    ("attraction", "記念館"),
    ("retail", "土産店"),
    ("transport", "交通"),
    ("activity", "体験工房"),
    ("travel_agency", "旅行社"),
];
const AREAS: &[&str] = &[
    "高山",
    "白川郷",
    "下呂",
    "郡上",
    "岐阜",
    "関",
    "美濃",
    "恵那",
];

/// The day the demo data's history runs up to, fixed so the data does not depend on today.
fn base_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date")
}

fn day(rng: &mut Rng, within_days: u64) -> NaiveDate {
    base_day() - Duration::days(rng.below(within_days) as i64)
}

fn timestamp(rng: &mut Rng, within_days: u64) -> String {
    format!(
        "{} {:02}:{:02}",
        day(rng, within_days),
        8 + rng.below(12),
        rng.below(60)
    )
}

pub fn tourist(rng: &mut Rng, i: usize) -> Value {
    let (family, family_kana, family_romaji) = *rng.pick(FAMILY);
    let (given, given_kana, given_romaji, gender) = *rng.pick(GIVEN);
    let (prefecture, city, postal) = *rng.pick(PLACES);
    let abroad = rng.chance(12);
    let (nationality, language) = if abroad {
        *rng.pick(FOREIGN)
    } else {
        ("JP", "ja")
    };
    let interests: Vec<&str> = INTERESTS
        .iter()
        .copied()
        .filter(|_| rng.chance(25))
        .collect();
    let first_visit = day(rng, 3 * 365);
    let last_visit = first_visit
        + Duration::days(rng.below(((base_day() - first_visit).num_days() + 1) as u64) as i64);
    let birth = NaiveDate::from_ymd_opt(
        1950 + rng.below(56) as i32,
        1 + rng.below(12) as u32,
        1 + rng.below(28) as u32,
    )
    .expect("a valid birth date");
    json!({
        "email": format!("{given_romaji}.{family_romaji}.{i}@example.{}", if abroad { "com" } else { "jp" }),
        "family_name": family, "given_name": given,
        "family_name_kana": family_kana, "given_name_kana": given_kana,
        "gender": if rng.chance(5) { "unanswered" } else { gender },
        "birth_date": birth.to_string(),
        "postal_code": if abroad { Value::Null } else { json!(postal) },
        "prefecture": if abroad { Value::Null } else { json!(prefecture) },
        "city": if abroad { Value::Null } else { json!(city) },
        "address_line": if abroad { Value::Null } else { json!(format!("{}-{}-{}", 1 + rng.below(9), 1 + rng.below(20), 1 + rng.below(30))) },
        "phone": if rng.chance(40) { json!(format!("0{}-{:04}-{:04}", 3 + rng.below(6), rng.below(10_000), rng.below(10_000))) } else { Value::Null },
        "mobile_phone": if rng.chance(70) { json!(format!("090-{:04}-{:04}", rng.below(10_000), rng.below(10_000))) } else { Value::Null },
        "nationality": nationality, "residence_country": nationality, "language": language,
        "member_type": if rng.chance(10) { "premium" } else { "general" },
        "registration_source": rng.pick(SOURCES),
        "registered_at": timestamp(rng, 5 * 365),
        "opt_in_email": rng.chance(80), "opt_in_sms": rng.chance(30), "opt_in_line": rng.chance(45),
        "line_user_id": if rng.chance(45) { json!(format!("U{:032x}", rng.next_u64() as u128 * 7919)) } else { Value::Null },
        "first_visit_on": first_visit.to_string(), "last_visit_on": last_visit.to_string(),
        "visit_count": 1 + rng.below(12), "total_spend": 0,
        "interests": interests,
        "travel_purpose": rng.pick(&["leisure", "leisure", "leisure", "business", "visiting_friends", "education"]),
        "companions": rng.pick(&["solo", "couple", "family", "friends", "group", "business"]),
        "occupation": rng.pick(&["会社員", "学生", "自営業", "公務員", "主婦・主夫", "その他"]),
        "notes": Value::Null,
    })
}

pub fn business(rng: &mut Rng, i: usize) -> Value {
    let (category, suffix) = *rng.pick(BUSINESS_KINDS);
    let area = *rng.pick(AREAS);
    let (family, family_kana, _) = *rng.pick(FAMILY);
    let payment_methods: Vec<&str> = ["cash", "credit_card", "e_money", "qr_code", "ic_card"]
        .into_iter()
        .filter(|_| rng.chance(60))
        .collect();
    json!({
        "name": format!("{area}{family}{suffix} {i}"), "name_kana": family_kana,
        "category": category,
        "corporate_number": format!("{:013}", 1_000_000_000_000u64 + i as u64),
        "representative_name": format!("{family} {}", rng.pick(GIVEN).0),
        "contact_person": format!("{family} {}", rng.pick(GIVEN).0),
        "email": format!("info{i}@biz.example.jp"),
        "phone": format!("0577-{:02}-{:04}", rng.below(100), rng.below(10_000)),
        "postal_code": "506-0011", "prefecture": "岐阜県", "city": "高山市",
        "address_line": format!("本町{}-{}", 1 + rng.below(5), 1 + rng.below(40)),
        "area": area,
        "website": format!("https://biz{i}.example.jp/"),
        "opening_hours": "9:00-17:00", "regular_holidays": rng.pick(&["水曜日", "火曜日", "年中無休"]),
        "capacity": 10 + rng.below(200),
        "languages": if rng.chance(40) { json!(["ja", "en"]) } else { json!(["ja"]) },
        "payment_methods": payment_methods,
        "membership_status": rng.pick(&["member", "member", "non_member", "former_member"]),
        "membership_started_on": day(rng, 10 * 365).to_string(),
        "contract_started_on": day(rng, 3 * 365).to_string(),
        "point_programme": rng.chance(35), "parking": rng.chance(50), "barrier_free": rng.chance(30), "free_wifi": rng.chance(60),
    })
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub tourists: usize,
    pub businesses: usize,
    pub purchases: usize,
    pub point_entries: usize,
    pub inquiries: usize,
    pub interactions: usize,
}

/// Where the demo load has got to, for a progress display.
pub trait Progress {
    fn step(&mut self, what: &str, done: usize, total: usize);
}

impl<F: FnMut(&str, usize, usize)> Progress for F {
    fn step(&mut self, what: &str, done: usize, total: usize) {
        self(what, done, total)
    }
}

async fn in_batches(
    store: &Store,
    entity: &str,
    items: Vec<Value>,
    progress: &mut dyn Progress,
) -> Result<Vec<i64>, StorageError> {
    let system = Principal::system();
    let total = items.len();
    let mut ids = Vec::with_capacity(total);
    let mut rest = items.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Value> = rest.by_ref().take(BATCH).collect();
        ids.extend(
            store
                .bulk_create(&system, entity, chunk)
                .await?
                .into_iter()
                .map(|r| r.id),
        );
        progress.step(entity, ids.len(), total);
    }
    Ok(ids)
}

/// Loads `tourists` tourists and `businesses` businesses with their histories.
pub async fn load(
    store: &Store,
    tourists: usize,
    businesses: usize,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<Summary, StorageError> {
    let mut rng = Rng::new(seed);
    let mut summary = Summary::default();
    let mut tourist_ids = Vec::with_capacity(tourists);
    // Generated a batch at a time so that 10 million tourists never sit in memory at once.
    for start in (0..tourists).step_by(BATCH * 10) {
        let end = (start + BATCH * 10).min(tourists);
        let items: Vec<Value> = (start..end).map(|i| tourist(&mut rng, i)).collect();
        let mut relay =
            |what: &str, done: usize, _: usize| progress.step(what, start + done, tourists);
        tourist_ids.extend(in_batches(store, "tourists", items, &mut relay).await?);
    }
    summary.tourists = tourist_ids.len();

    let items: Vec<Value> = (0..businesses).map(|i| business(&mut rng, i)).collect();
    let business_ids = in_batches(store, "businesses", items, progress).await?;
    summary.businesses = business_ids.len();

    let mut purchases = Vec::new();
    let mut spend: Vec<(i64, i64)> = Vec::new();
    for (n, id) in tourist_ids.iter().enumerate() {
        let mut total = 0;
        for k in 0..rng.below(5) {
            let (product, category, price) = *rng.pick(PRODUCTS);
            let quantity = 1 + rng.below(3) as i64;
            total += price * quantity;
            purchases.push(json!({"tourist_id": id, "occurred_at": timestamp(&mut rng, 2 * 365), "amount": price * quantity,
                "product": product, "product_category": category, "shop": format!("{}店", rng.pick(AREAS)),
                "quantity": quantity, "source_system": rng.pick(&["ota", "eticket", "pos"]), "transaction_id": format!("P-{n}-{k}")}));
        }
        if total > 0 {
            spend.push((*id, total));
        }
        // Written as they accumulate, so that ten million tourists' histories never sit in memory.
        let last = n + 1 == tourist_ids.len();
        if purchases.len() >= BATCH * 10 || last {
            summary.purchases +=
                in_batches(store, "purchases", std::mem::take(&mut purchases), progress)
                    .await?
                    .len();
        }
        if spend.len() >= BATCH || last {
            let updates: Vec<Value> = std::mem::take(&mut spend)
                .into_iter()
                .map(|(id, total)| json!({"id": id, "total_spend": total}))
                .collect();
            if !updates.is_empty() {
                store
                    .bulk_update(&Principal::system(), "tourists", &updates)
                    .await?;
            }
        }
    }

    let mut entries = Vec::new();
    for (n, id) in tourist_ids.iter().enumerate().filter(|(n, _)| n % 10 == 0) {
        let granted = 100 * (1 + rng.below(20) as i64);
        entries.push(json!({"tourist_id": id, "occurred_at": timestamp(&mut rng, 365), "kind": "grant", "points": granted,
            "source_system": rng.pick(&["point_programme", "itinerary_planner", "ota"]), "transaction_id": format!("G-{n}")}));
        if rng.chance(40) {
            entries.push(json!({"tourist_id": id, "occurred_at": format!("{} 12:00", base_day()), "kind": "use", "points": 1 + rng.below(granted as u64),
                "source_system": "point_programme", "transaction_id": format!("U-{n}")}));
        }
        if entries.len() >= BATCH * 10 {
            summary.point_entries += in_batches(
                store,
                "point_ledger",
                std::mem::take(&mut entries),
                progress,
            )
            .await?
            .len();
        }
    }
    summary.point_entries += in_batches(store, "point_ledger", entries, progress)
        .await?
        .len();

    let mut inquiries = Vec::new();
    for id in &tourist_ids {
        if !rng.chance(2) {
            continue;
        }
        inquiries.push(json!({"tourist_id": id, "subject": rng.pick(&["忘れ物について", "ポイントが付与されない", "バスの時刻", "宿泊予約の変更", "イベントの問い合わせ"]),
            "category": rng.pick(&["lost_item", "points", "general", "booking", "general"]), "channel": rng.pick(&["phone", "email", "web_form", "line"]),
            "status": rng.pick(&["open", "in_progress", "resolved", "closed"]), "received_at": timestamp(&mut rng, 180), "assigned_staff": rng.pick(&["鈴木", "佐藤", "高橋"])}));
    }
    let inquiry_ids = in_batches(store, "inquiries", inquiries, progress).await?;
    summary.inquiries = inquiry_ids.len();
    let responses: Vec<Value> = inquiry_ids
        .iter()
        .map(|id| json!({"inquiry_id": id, "responded_at": timestamp(&mut rng, 90), "status": "in_progress", "channel": "phone", "staff": "鈴木", "body": "内容を確認し、折り返しご連絡しました。"}))
        .collect();
    in_batches(store, "inquiry_responses", responses, progress).await?;

    let interactions: Vec<Value> = business_ids
        .iter()
        .map(|id| json!({"business_id": id, "occurred_at": timestamp(&mut rng, 365), "kind": rng.pick(&["visit", "call", "email", "meeting", "contract"]),
            "subject": rng.pick(&["定例訪問", "パンフレット設置の相談", "ポイント加盟の案内", "契約更新"]), "staff": rng.pick(&["田中", "山本", "伊藤"])}))
        .collect();
    summary.interactions = in_batches(store, "interactions", interactions, progress)
        .await?
        .len();
    Ok(summary)
}

/// The demo's sign-in accounts: an administrator and a clerk who may not see phone numbers.
pub const DEMO_ADMIN: (&str, &str) = ("admin", "tabiji-demo-admin");
pub const DEMO_CLERK: (&str, &str) = ("clerk", "tabiji-demo-clerk");

pub async fn ensure_users(store: &Store) -> Result<(), StorageError> {
    let db = store.db();
    if users::find_user(db, DEMO_ADMIN.0).await?.is_none() {
        users::create_user(
            db,
            NewUser {
                login: DEMO_ADMIN.0.into(),
                display_name: "管理者".into(),
                password: DEMO_ADMIN.1.into(),
                is_admin: true,
                ..Default::default()
            },
        )
        .await?;
    }
    if users::find_user(db, DEMO_CLERK.0).await?.is_none() {
        let mut tourists = EntityRights::with_ops(&[Op::View, Op::Create, Op::Edit, Op::Export]);
        for hidden in ["phone", "mobile_phone"] {
            tourists.fields.insert(hidden.into(), FieldAccess::None);
        }
        let mut rights = Rights::default();
        rights.entities.insert("tourists".into(), tourists);
        for entity in [
            "inquiries",
            "inquiry_responses",
            "purchases",
            "point_ledger",
        ] {
            rights.entities.insert(
                entity.into(),
                EntityRights::with_ops(&[Op::View, Op::Create]),
            );
        }
        users::create_role(
            db,
            "窓口担当 / front desk",
            "Tourists without phone numbers; inquiries",
            &rights,
        )
        .await?;
        users::create_user(
            db,
            NewUser {
                login: DEMO_CLERK.0.into(),
                display_name: "窓口担当".into(),
                password: DEMO_CLERK.1.into(),
                roles: vec!["窓口担当 / front desk".into()],
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

/// The example content of `examples/content/`, in an order each item's references are saved
/// before it: the content screen and the flows of the demo have a template to show and send.
const DEMO_CONTENT: [(ContentKind, &str, &str); 4] = [
    (
        ContentKind::Snippet,
        "greeting",
        include_str!("../../examples/content/snippets/greeting.json"),
    ),
    (
        ContentKind::Part,
        "legal",
        include_str!("../../examples/content/parts/legal.json"),
    ),
    (
        ContentKind::Part,
        "footer",
        include_str!("../../examples/content/parts/footer.json"),
    ),
    (
        ContentKind::Template,
        "autumn",
        include_str!("../../examples/content/templates/autumn.json"),
    ),
];

/// Saves the example content unless some content is saved already.
pub async fn ensure_content(store: &Store, now: DateTime<Utc>) -> Result<(), StorageError> {
    if !content::all(store).await?.is_empty() {
        return Ok(());
    }
    for (kind, key, text) in DEMO_CONTENT {
        let definition: Value = serde_json::from_str(text).expect("the examples are JSON");
        content::save(store, &Principal::system(), kind, key, &definition, now).await?;
    }
    Ok(())
}

/// Rows per second, for progress lines and summaries.
pub fn rate(rows: usize, since: Instant) -> f64 {
    rows as f64 / since.elapsed().as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a: Vec<Value> = (0..50)
            .scan(Rng::new(7), |rng, i| Some(tourist(rng, i)))
            .collect();
        let b: Vec<Value> = (0..50)
            .scan(Rng::new(7), |rng, i| Some(tourist(rng, i)))
            .collect();
        assert_eq!(a, b);
        let c: Vec<Value> = (0..50)
            .scan(Rng::new(8), |rng, i| Some(tourist(rng, i)))
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn generated_records_are_valid() {
        let schema = tabiji_model::schema::tourists();
        let mut rng = Rng::new(1);
        for i in 0..500 {
            let Value::Object(t) = tourist(&mut rng, i) else {
                panic!()
            };
            for (k, v) in t {
                schema
                    .field(&k)
                    .unwrap()
                    .parse(&v)
                    .unwrap_or_else(|e| panic!("{k}: {e}"));
            }
        }
        let schema = tabiji_model::schema::businesses();
        for i in 0..500 {
            let Value::Object(b) = business(&mut rng, i) else {
                panic!()
            };
            for (k, v) in b {
                schema
                    .field(&k)
                    .unwrap()
                    .parse(&v)
                    .unwrap_or_else(|e| panic!("{k}: {e}"));
            }
        }
    }
}
