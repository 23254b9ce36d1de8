//! Japanese and English text of the screens. Every key has both; a test keeps it so.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// From a stored choice or the browser's language (`ja-JP`, `en-US`…); Japanese unless
    /// English is asked for, as the first users are Japanese.
    pub fn from_code(code: &str) -> Lang {
        if code.to_ascii_lowercase().starts_with("en") {
            Lang::En
        } else {
            Lang::Ja
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Ja => Lang::En,
            Lang::En => Lang::Ja,
        }
    }
}

/// A label in the language shown.
pub fn label(label: &tabiji_model::field::Label, lang: Lang) -> String {
    match lang {
        Lang::Ja => label.ja.clone(),
        Lang::En => label.en.clone(),
    }
}

/// `(key, Japanese, English)`.
const TEXT: &[(&str, &str, &str)] = &[
    ("app.title", "tabiji 旅路", "tabiji"),
    ("login.title", "ログイン", "Sign in"),
    ("login.login", "ログイン ID", "Login"),
    ("login.password", "パスワード", "Password"),
    ("login.submit", "ログイン", "Sign in"),
    (
        "login.failed",
        "ログイン ID かパスワードが違います",
        "Wrong login or password",
    ),
    ("nav.flows", "シナリオ", "Scenarios"),
    ("nav.logout", "ログアウト", "Sign out"),
    ("nav.language", "English", "日本語"),
    ("flows.new", "新しいシナリオ", "New scenario"),
    ("flows.name", "名前", "Name"),
    ("flows.status", "状態", "Status"),
    ("flows.updated", "更新", "Updated"),
    ("flows.version", "版", "Version"),
    ("flows.none", "シナリオはまだありません", "No scenarios yet"),
    ("status.draft", "下書き", "draft"),
    ("status.active", "配信中", "active"),
    ("status.paused", "一時停止", "paused"),
    ("status.stopped", "停止", "stopped"),
    ("editor.palette", "ノード", "Nodes"),
    (
        "editor.palette_hint",
        "キャンバスへドラッグ（クリックでも追加）",
        "Drag onto the canvas (or click to add)",
    ),
    ("editor.save", "下書き保存", "Save draft"),
    ("editor.publish", "公開", "Publish"),
    ("editor.pause", "一時停止", "Pause"),
    ("editor.resume", "再開", "Resume"),
    ("editor.undo", "元に戻す", "Undo"),
    ("editor.redo", "やり直し", "Redo"),
    ("editor.layout", "自動整列", "Auto-layout"),
    ("editor.delete", "削除", "Delete"),
    ("editor.fit", "全体表示", "Fit"),
    ("editor.predict", "予測", "Predict"),
    ("editor.saved", "保存しました", "Saved"),
    (
        "editor.published",
        "公開しました（版 {}）",
        "Published (version {})",
    ),
    (
        "editor.unsaved",
        "未保存の変更があります",
        "Unsaved changes",
    ),
    (
        "editor.problems",
        "公開前に直すこと",
        "To fix before publishing",
    ),
    ("editor.no_problems", "公開できます", "Ready to publish"),
    (
        "editor.keys",
        "Delete: 削除 · Ctrl+Z / Ctrl+Y: 元に戻す / やり直し · 矢印: 移動 · Shift+クリック: 複数選択",
        "Delete: remove · Ctrl+Z / Ctrl+Y: undo / redo · arrows: move · Shift+click: select several",
    ),
    ("editor.predicted", "予測: {} 人", "Predicted: {} contacts"),
    ("props.flow", "シナリオ設定", "Scenario settings"),
    ("props.node", "ノード", "Node"),
    ("props.name", "名前", "Name"),
    ("props.entry", "開始条件", "Entry"),
    ("props.entry.api", "API 呼び出し", "API call"),
    (
        "props.entry.segment_snapshot",
        "セグメント（開始時点）",
        "Segment (at start)",
    ),
    (
        "props.entry.segment_enter",
        "セグメントに入ったとき",
        "Starts matching a segment",
    ),
    ("props.entry.event", "イベント", "Event"),
    ("props.entry.schedule", "スケジュール", "Schedule"),
    ("props.segment", "セグメント", "Segment"),
    ("props.event", "イベント名", "Event name"),
    (
        "props.cron",
        "cron（分 時 日 月 曜日）",
        "cron (min hour day month weekday)",
    ),
    ("props.re_entry", "再エントリー", "Re-entry"),
    ("props.re_entry.never", "しない", "never"),
    ("props.re_entry.after_exit", "終了後に可", "after exit"),
    ("props.re_entry.always", "いつでも", "always"),
    ("props.zone", "タイムゾーン", "Time zone"),
    ("props.template", "テンプレート", "Template"),
    ("props.sender", "送信元", "Sender"),
    (
        "props.best_time",
        "最適時刻に送る（期間内）",
        "At each contact's best time within",
    ),
    (
        "props.duration",
        "待ち時間（例 3d, 12h）",
        "Wait (e.g. 3d, 12h)",
    ),
    ("props.time", "時刻", "Time of day"),
    ("props.weekdays", "曜日（mon,tue…）", "Weekdays (mon,tue…)"),
    ("props.awaited", "待つイベント", "Wait for"),
    ("props.awaited.opened", "開封", "opened"),
    ("props.awaited.clicked", "クリック", "clicked"),
    ("props.awaited.purchased", "購入", "purchased"),
    ("props.awaited.event", "名前付きイベント", "named event"),
    ("props.of", "対象の配信ノード", "Of the send node"),
    ("props.timeout", "期限（例 3d）", "Timeout (e.g. 3d)"),
    ("props.field", "項目", "Field"),
    ("props.op", "比較", "Operator"),
    ("props.value", "値", "Value"),
    ("props.snippet", "rhai スニペット", "rhai snippet"),
    (
        "props.variants",
        "分岐（名前:割合, …）",
        "Variants (name:percent, …)",
    ),
    ("props.holdout", "ホールドアウト %", "Hold-out %"),
    ("props.set", "設定する項目（JSON）", "Fields to set (JSON)"),
    ("props.none", "（選択）", "(choose)"),
    ("props.invalid_json", "JSON ではありません", "Not JSON"),
    ("kind.email", "メール", "E-mail"),
    ("kind.sms", "SMS", "SMS"),
    ("kind.line", "LINE", "LINE"),
    ("kind.webhook", "Webhook", "Webhook"),
    ("kind.wait", "待機", "Wait"),
    ("kind.wait_until", "時刻まで待機", "Wait until"),
    ("kind.wait_for_event", "イベント待ち", "Wait for event"),
    ("kind.branch", "条件分岐", "Branch"),
    ("kind.condition", "rhai 分岐", "rhai condition"),
    ("kind.split", "A/B 分割", "A/B split"),
    ("kind.update_contact", "顧客を更新", "Update contact"),
    ("kind.exit", "終了", "Exit"),
    ("kind.entry", "開始", "Entry"),
    ("port.next", "次へ", "next"),
    ("port.on_event", "あり", "happened"),
    ("port.on_timeout", "なし", "timed out"),
    ("port.on_true", "はい", "yes"),
    ("port.on_false", "いいえ", "no"),
    ("nav.tourists", "観光客", "Tourists"),
    ("nav.businesses", "事業者", "Businesses"),
    ("nav.inquiries", "問い合わせ", "Inquiries"),
    ("count.tourists", "{} 人", "{} tourists"),
    ("count.businesses", "{} 件", "{} businesses"),
    ("count.inquiries", "{} 件", "{} inquiries"),
    (
        "contacts.all",
        "すべての条件を満たす",
        "Match every condition",
    ),
    (
        "contacts.any",
        "いずれかの条件を満たす",
        "Match any condition",
    ),
    ("contacts.add", "条件を追加", "Add a condition"),
    ("contacts.remove", "条件を削除", "Remove the condition"),
    (
        "contacts.segment_key",
        "セグメントキー（英数字）",
        "Segment key (letters, digits)",
    ),
    ("contacts.segment_name", "セグメント名", "Segment name"),
    (
        "contacts.save_segment",
        "セグメントとして保存",
        "Save as a segment",
    ),
    (
        "contacts.segment_saved",
        "セグメントを保存しました: {}",
        "Segment saved: {}",
    ),
    ("contacts.columns", "表示する項目", "Columns"),
    ("contacts.previous", "前へ", "Previous"),
    ("contacts.next", "次へ", "Next"),
    ("contacts.open", "開く", "Open"),
    ("card.details", "基本情報", "Details"),
    ("card.save", "変更を保存", "Save changes"),
    ("card.saved", "保存しました", "Saved"),
    (
        "card.refused",
        "保存できませんでした。赤字の項目を直してください",
        "Not saved: correct the fields marked in red",
    ),
    ("card.unchanged", "変更はありません", "Nothing has changed"),
    ("card.timeline", "履歴", "Timeline"),
    ("card.older", "さらに古い履歴", "Older entries"),
    ("card.empty", "履歴はありません", "Nothing here yet"),
    ("card.read_only", "閲覧のみ", "view only"),
    ("card.add_pick", "＋ 記録を追加…", "+ Add an entry…"),
    ("card.add", "追加", "Add"),
    ("card.added", "追加しました", "Added"),
    ("points.grant", "付与", "granted"),
    ("points.use", "利用", "used"),
    ("points.expire", "失効", "expired"),
    ("points.adjust", "調整", "adjusted"),
    ("inquiry.open", "受付", "open"),
    ("inquiry.in_progress", "対応中", "in progress"),
    ("inquiry.resolved", "解決", "resolved"),
    ("inquiry.closed", "完了", "closed"),
    ("nav.content", "コンテンツ", "Content"),
    ("content.templates", "テンプレート", "Templates"),
    ("content.parts", "パーツ", "Parts"),
    ("content.snippets", "スニペット (rhai)", "Snippets (rhai)"),
    ("content.one.templates", "テンプレート", "Template"),
    ("content.one.parts", "パーツ", "Part"),
    ("content.one.snippets", "スニペット", "Snippet"),
    (
        "content.new_key",
        "新しいキー (英数字)",
        "New key (letters, digits)",
    ),
    ("content.new", "作成", "Create"),
    (
        "content.pick",
        "左の一覧から選ぶか、新しいキーで作成してください",
        "Pick an item on the left, or create one with a new key",
    ),
    (
        "content.new_item",
        "まだ保存されていません。保存すると版 1 になります",
        "Not saved yet: saving makes version 1",
    ),
    (
        "content.refused",
        "保存できません。各項目の下の指摘をご確認ください",
        "Not accepted: see the notes under the fields",
    ),
    ("content.saved", "保存しました", "Saved"),
    (
        "content.save",
        "新しい版として保存",
        "Save as a new version",
    ),
    ("content.delete", "削除", "Delete"),
    (
        "content.confirm_delete",
        "削除しますか? (これまでの版は残ります)",
        "Delete it? (Its versions stay readable.)",
    ),
    ("content.versions", "版の履歴", "Versions"),
    ("content.load", "フォームに読み込む", "Load into the form"),
    (
        "content.loaded",
        "読み込みました。保存すると新しい版になります",
        "Loaded: saving makes it the newest version",
    ),
    ("content.preview", "プレビュー", "Preview"),
    (
        "content.preview_run",
        "この内容でプレビュー",
        "Preview what is on screen",
    ),
    ("content.tourist", "観光客 ID", "Tourist ID"),
    ("content.test_run", "テスト実行", "Test run"),
    (
        "content.args",
        "引数 (JSON 配列)",
        "Arguments (a JSON array)",
    ),
    ("content.run", "実行", "Run"),
    ("content.input.channel", "チャネル", "Channel"),
    ("content.input.subject", "件名", "Subject"),
    ("content.input.preheader", "プリヘッダー", "Preheader"),
    ("content.input.html", "HTML 本文", "HTML body"),
    ("content.input.text", "テキスト本文", "Text body"),
    (
        "content.input.flex",
        "Flex メッセージ (JSON)",
        "Flex message (JSON)",
    ),
    ("content.input.body", "本文", "Body"),
    ("content.input.description", "説明", "Description"),
    ("content.input.source", "コード (rhai)", "Code (rhai)"),
    ("channel.email", "メール", "E-mail"),
    ("channel.sms", "SMS", "SMS"),
    ("channel.line", "LINE", "LINE"),
    ("channel.webhook", "Webhook", "Webhook"),
    ("channel.test", "テスト配信", "Test channel"),
    ("delivery.pending", "送信待ち", "waiting to send"),
    ("delivery.sending", "送信中", "sending"),
    ("delivery.sent", "送信済み", "sent"),
    ("delivery.dead", "送信失敗", "failed"),
    ("delivery.unknown", "送信結果不明", "outcome unknown"),
    ("delivery.suppressed", "送信対象外", "not sent (suppressed)"),
    ("event.opened", "開封", "opened"),
    ("event.clicked", "クリック", "clicked"),
    ("event.bounced", "不達", "bounced"),
    ("event.unsubscribed", "配信停止", "unsubscribed"),
    ("event.purchased", "購入", "purchased"),
    ("run.waiting", "進行中", "in progress"),
    ("run.finished", "終了", "finished"),
    ("op.eq", "等しい", "equals"),
    ("op.ne", "等しくない", "does not equal"),
    (
        "op.in",
        "いずれか（カンマ区切り）",
        "is one of (comma-separated)",
    ),
    ("op.not_in", "いずれでもない", "is none of"),
    ("op.lt", "より小さい", "less than"),
    ("op.lte", "以下", "at most"),
    ("op.gt", "より大きい", "greater than"),
    ("op.gte", "以上", "at least"),
    ("op.between", "範囲（下限, 上限）", "between (low, high)"),
    ("op.contains", "含む", "contains"),
    ("op.not_contains", "含まない", "does not contain"),
    ("op.starts_with", "で始まる", "starts with"),
    ("op.ends_with", "で終わる", "ends with"),
    ("op.empty", "空", "is empty"),
    ("op.not_empty", "空でない", "is not empty"),
    ("op.is_true", "はい", "is yes"),
    ("op.is_false", "いいえ", "is no"),
    (
        "op.in_period",
        "期間内（30, this month…）",
        "within (30, this month…)",
    ),
    ("op.month_is", "月（1–12, this）", "month is (1–12, this)"),
    ("op.any_of", "いずれかを含む", "has any of"),
    ("op.all_of", "すべてを含む", "has all of"),
    ("op.none_of", "どれも含まない", "has none of"),
    (
        "error.network",
        "サーバーに接続できません",
        "The server cannot be reached",
    ),
    (
        "error.session",
        "ログインし直してください",
        "Please sign in again",
    ),
    (
        "login.login_locked",
        "パスワードの誤りが続いたため、このログイン ID は 15 分間ロックされています。管理者に解除を依頼することもできます",
        "Too many wrong passwords: this login is locked for 15 minutes, or until an administrator unlocks it",
    ),
    (
        "login.too_many_attempts",
        "この端末からのログイン失敗が多すぎます。しばらく待ってからやり直してください",
        "Too many failed sign-ins from this address; wait a few minutes and try again",
    ),
    (
        "login.already_signed_in",
        "このアカウントは別の場所でログイン中です。そちらでログアウトするか、管理者に依頼してください",
        "This account is signed in elsewhere; sign out there first, or ask an administrator",
    ),
    ("nav.imports", "取込", "Imports"),
    ("imports.send", "ファイルを取り込む", "Import a file"),
    ("imports.flow", "取込フロー", "Import flow"),
    ("imports.columns", "{} 列", "{} columns"),
    (
        "imports.no_flows",
        "取り込めるフローがありません。管理者に取込フローの登録を依頼してください",
        "There is no import flow you may run; ask an administrator to save one",
    ),
    ("imports.file", "ファイル", "File"),
    ("imports.start", "取り込む", "Import"),
    ("imports.fetch", "今すぐ取得", "Fetch now"),
    ("imports.fetching", "取得しています…", "Fetching…"),
    (
        "imports.fetched",
        "{} 件のファイルを取り込みました",
        "{} files imported",
    ),
    ("imports.stage.sending", "送信中 {}%", "Sending {}%"),
    ("imports.stage.reading", "取込中 {}%", "Importing {}%"),
    ("imports.stage.done", "完了", "Done"),
    ("imports.stage.failed", "失敗", "Failed"),
    ("imports.run", "取込 #{}", "Import #{}"),
    ("imports.started", "開始", "Started"),
    ("imports.by", "実行者", "By"),
    ("imports.status", "状態", "Status"),
    ("imports.size", "サイズ", "Size"),
    ("imports.count.rows_read", "読込", "Read"),
    ("imports.count.created", "追加", "Created"),
    ("imports.count.updated", "更新", "Updated"),
    ("imports.count.unchanged", "変更なし", "Unchanged"),
    ("imports.count.deleted", "削除", "Deleted"),
    ("imports.count.merged", "統合", "Merged"),
    ("imports.count.rejected", "エラー", "Rejected"),
    ("imports.rejected_rows", "エラー行", "Rejected rows"),
    (
        "imports.download",
        "エラー行をダウンロード (CSV)",
        "Download rejected rows (CSV)",
    ),
    ("imports.line", "行", "Line"),
    ("imports.field", "項目", "Field"),
    ("imports.reason", "理由", "Reason"),
    ("imports.row", "内容", "Row"),
    (
        "imports.more_rejects",
        "ほか {} 行はダウンロードでご覧ください",
        "{} more in the download",
    ),
    ("imports.history", "取込履歴", "Import history"),
    ("imports.source.upload", "アップロード", "Upload"),
    (
        "imports.source.directory",
        "フォルダ（定期）",
        "Folder (scheduled)",
    ),
    ("imports.source.sftp", "SFTP（定期）", "SFTP (scheduled)"),
    ("imports.source.http", "HTTP（定期）", "HTTP (scheduled)"),
    ("nav.sql", "SQL", "SQL"),
    ("sql.catalog", "テーブルと列", "Tables and columns"),
    ("sql.kind.entity", "データ", "data"),
    ("sql.kind.output", "出力テーブル", "output table"),
    ("sql.run", "実行", "Run"),
    ("sql.limit", "最大行数", "Rows at most"),
    ("sql.keys", "Ctrl+Enter で実行", "Ctrl+Enter runs"),
    ("sql.rows", "{} 行 ({ms} ms)", "{} rows ({ms} ms)"),
    (
        "sql.truncated",
        "さらに行があります。最大行数を増やすか条件を絞ってください",
        "More rows matched: raise the limit or narrow the query",
    ),
    (
        "sql.keep",
        "結果を出力テーブルに保存",
        "Keep the result as an output table",
    ),
    ("sql.table_name", "テーブル名", "Table name"),
    ("sql.description", "説明（任意）", "Description (optional)"),
    ("sql.mode.create", "新規作成", "Create"),
    ("sql.mode.overwrite", "上書き", "Overwrite"),
    ("sql.mode.append", "追記", "Append"),
    ("sql.save", "保存", "Save"),
    (
        "sql.saved",
        "{} を保存しました（{rows} 行）",
        "Saved {} ({rows} rows)",
    ),
    ("sql.tables", "出力テーブル", "Output tables"),
    ("sql.row_count", "行数", "Rows"),
    ("sql.columns", "列", "Columns"),
    ("sql.updated", "更新", "Updated"),
    ("sql.open", "開く", "Open"),
    ("sql.copy", "コピー", "Copy"),
    (
        "sql.copy_to",
        "{} のコピー先のテーブル名",
        "Copy {} to a table named",
    ),
    ("sql.copied", "{} にコピーしました", "Copied to {}"),
    ("sql.drop", "削除", "Drop"),
    (
        "sql.confirm_drop",
        "出力テーブル {} を削除しますか？",
        "Drop output table {}?",
    ),
    ("sql.dropped", "{} を削除しました", "Dropped {}"),
    ("nav.admin", "ユーザーと権限", "Users and rights"),
    ("admin.users", "ユーザー", "Users"),
    ("admin.login", "ログイン ID", "Login"),
    ("admin.display_name", "表示名", "Display name"),
    ("admin.password", "パスワード", "Password"),
    (
        "admin.new_password",
        "新しいパスワード（変更時のみ）",
        "New password (to change it)",
    ),
    ("admin.administrator", "管理者", "Administrator"),
    ("admin.active", "有効", "Active"),
    ("admin.roles", "ロール", "Roles"),
    ("admin.role", "ロール名", "Role"),
    ("admin.description", "説明", "Description"),
    ("admin.edit", "編集", "Edit"),
    ("admin.edit_rights", "権限を編集", "Edit rights"),
    ("admin.logout", "強制ログオフ", "Sign out everywhere"),
    (
        "admin.logged_out",
        "{} 件のセッションを終了しました",
        "{} sessions ended",
    ),
    ("admin.unlock", "ロック解除", "Unlock"),
    ("admin.unlocked", "ロックを解除しました", "Unlocked"),
    ("admin.new_user", "ユーザーを追加", "New user"),
    ("admin.new_role", "ロールを追加", "New role"),
    ("admin.create", "追加", "Create"),
    (
        "admin.user_created",
        "ユーザー {} を追加しました",
        "User {} created",
    ),
    (
        "admin.role_created",
        "ロール {} を追加しました",
        "Role {} created",
    ),
    ("admin.rights_of_user", "{} の権限", "Rights of {}"),
    (
        "admin.rights_of_role",
        "ロール {} の権限",
        "Rights of role {}",
    ),
    (
        "admin.own_rights",
        "下の権限はこのユーザー個人の権限です。ロールの権限と合わせて適用されます",
        "The rights below are the user's own; their roles' rights are added to them",
    ),
    ("admin.fields_of", "{} の項目ごとの権限", "Field access: {}"),
    ("admin.access.others", "指定のない項目", "Fields not named"),
    ("admin.access.default", "既定", "Default"),
    ("admin.access.none", "表示しない", "Hidden"),
    ("admin.access.read", "閲覧のみ", "Read"),
    ("admin.access.edit", "編集可", "Edit"),
    (
        "admin.records",
        "対象レコードの条件（API で設定、保存しても変わりません）: ",
        "Only the records matching (set through the API; kept as it is): ",
    ),
    ("admin.save", "保存", "Save"),
    ("admin.saved", "保存しました", "Saved"),
    ("right.view", "閲覧", "View"),
    ("right.create", "作成", "Create"),
    ("right.edit", "編集", "Edit"),
    ("right.delete", "削除", "Delete"),
    ("right.import", "取込", "Import"),
    ("right.export", "出力", "Export"),
    ("right.schema", "項目定義", "Schema"),
    ("right.publish", "公開", "Publish"),
    ("target.flows", "シナリオ", "Scenarios"),
    ("target.segments", "セグメント", "Segments"),
    ("target.lists", "リスト", "Lists"),
    ("target.reports", "レポート", "Reports"),
    ("target.sql", "SQL ワークスペース", "SQL workspace"),
    (
        "target.templates",
        "テンプレート・パーツ",
        "Templates and parts",
    ),
    ("target.snippets", "スニペット", "Snippets"),
    ("target.channels", "チャネル設定", "Channel settings"),
    ("target.suppressions", "配信停止リスト", "Suppression list"),
    ("target.messages", "配信履歴", "Messages sent"),
    ("target.events", "反応イベント", "Events"),
    ("target.runs", "シナリオ実行", "Flow runs"),
    ("nav.reports", "レポート", "Reports"),
    ("reports.dashboards", "ダッシュボード", "Dashboards"),
    ("reports.reports", "レポート", "Reports"),
    (
        "reports.none",
        "ダッシュボードもレポートもまだありません",
        "There are no dashboards or reports yet",
    ),
    (
        "reports.truncated",
        "行が多いため一部だけを表示しています",
        "Only the first rows are shown",
    ),
    ("reports.new", "新しいレポート", "New report"),
    ("reports.edit", "編集", "Edit"),
    ("reports.editing", "レポートの編集", "Edit the report"),
    ("reports.source", "集計対象", "What to count"),
    ("reports.source.records", "レコード", "Records"),
    (
        "reports.source.messages",
        "配信したメッセージ",
        "Messages sent",
    ),
    ("reports.entity", "データ", "Data"),
    ("reports.flow", "フロー", "Flow"),
    ("reports.every_flow", "すべてのフロー", "Every flow"),
    (
        "reports.period",
        "送信期間（30、last month など）",
        "Sent in (30, last month…)",
    ),
    ("reports.group_by", "グループ化", "Group by"),
    ("reports.add_group", "グループ化を追加", "Add a grouping"),
    ("reports.no_bucket", "値ごと", "Each value"),
    ("reports.measures", "集計値", "Measures"),
    ("reports.add_measure", "集計値を追加", "Add a measure"),
    ("reports.remove", "外す", "Remove"),
    ("reports.conditions", "条件", "Conditions"),
    ("reports.chart", "グラフ", "Chart"),
    ("reports.preview", "プレビュー", "Preview"),
    (
        "reports.key",
        "キー（英小文字・数字・_）",
        "Key (a-z, 0-9, _)",
    ),
    ("reports.name", "名前", "Name"),
    ("reports.description", "説明", "Description"),
    ("reports.save", "保存", "Save"),
    ("reports.delete", "削除", "Delete"),
    ("reports.json", "定義（JSON）", "Definition (JSON)"),
    ("reports.use_json", "このJSONを使う", "Use this JSON"),
    (
        "reports.json_only",
        "この定義（分析、入れ子の条件など）はフォームで表せません。JSONで編集してください。",
        "This definition (an analysis, nested conditions…) cannot be shown as a form: edit it as JSON.",
    ),
    ("reports.tourist_field", "観光客の{}", "Tourist's {}"),
    (
        "reports.needs_group",
        "棒グラフにはグループ化が必要です",
        "A bar chart needs a grouping",
    ),
    (
        "reports.needs_date",
        "折れ線グラフは最初のグループ化が日付です",
        "A line chart needs a date as its first grouping",
    ),
    (
        "reports.needs_one_each",
        "円グラフはグループ化1つと集計値1つで描きます",
        "A pie chart shows one measure over one grouping",
    ),
    (
        "reports.needs_steps",
        "ファネルはグループ化なしで、2つ以上の集計値を段にします",
        "A funnel shows two or more measures as steps, without groupings",
    ),
    (
        "reports.new_dashboard",
        "新しいダッシュボード",
        "New dashboard",
    ),
    ("reports.create", "作成", "Create"),
    ("reports.arrange", "配置を変更", "Arrange"),
    ("reports.save_layout", "配置を保存", "Save the layout"),
    ("reports.cancel", "やめる", "Cancel"),
    ("reports.add_widget", "ウィジェットを追加", "Add a widget"),
    ("reports.width", "幅（12列中）", "Width (of 12 columns)"),
    (
        "reports.title",
        "タイトル（空欄でレポート名）",
        "Title (empty: the report's name)",
    ),
    ("reports.earlier", "前へ", "Move earlier"),
    ("reports.later", "後へ", "Move later"),
    (
        "reports.delete_dashboard",
        "ダッシュボードを削除",
        "Delete the dashboard",
    ),
    (
        "reports.drag_hint",
        "ウィジェットはドラッグで並べ替えられます",
        "Drag a widget to move it",
    ),
    ("chart.table", "表", "Table"),
    ("chart.bar", "棒グラフ", "Bar"),
    ("chart.line", "折れ線グラフ", "Line"),
    ("chart.pie", "円グラフ", "Pie"),
    ("chart.funnel", "ファネル", "Funnel"),
    ("bucket.day", "日ごと", "By day"),
    ("bucket.week", "週ごと", "By week"),
    ("bucket.month", "月ごと", "By month"),
    ("bucket.year", "年ごと", "By year"),
    ("verb.count", "件数", "Count"),
    ("verb.sum", "合計", "Total of"),
    ("verb.avg", "平均", "Average of"),
    ("verb.min", "最小", "Minimum of"),
    ("verb.max", "最大", "Maximum of"),
    ("mgroup.flow", "フロー", "Flow"),
    ("mgroup.node", "ノード", "Node"),
    ("mgroup.template", "テンプレート", "Template"),
    ("mgroup.channel", "チャネル", "Channel"),
    ("mgroup.day", "送信日", "Day sent"),
    ("mgroup.week", "送信週", "Week sent"),
    ("mgroup.month", "送信月", "Month sent"),
    ("mgroup.age_group", "年代", "Age group"),
    ("measure.sent", "送信数", "Sent"),
    ("measure.failed", "失敗数", "Failed"),
    ("measure.opened", "開封数", "Opened"),
    ("measure.clicked", "クリック数", "Clicked"),
    ("measure.open_rate", "開封率", "Open rate"),
    ("measure.click_rate", "クリック率", "Click rate"),
    ("nav.audit", "アクセスログ", "Access log"),
    (
        "audit.title",
        "アクセスログとセッション",
        "Access log and sessions",
    ),
    ("audit.log", "アクセスログ", "Access log"),
    ("audit.login", "ユーザー", "User"),
    ("audit.action", "操作", "Action"),
    ("audit.entity", "データ", "Data"),
    ("audit.record", "レコードID", "Record id"),
    ("audit.outcome", "結果", "Outcome"),
    ("audit.outcome.ok", "許可", "Allowed"),
    ("audit.outcome.denied", "拒否", "Denied"),
    ("audit.any", "すべて", "Any"),
    ("audit.from", "開始日", "From"),
    ("audit.to", "終了日（含む）", "To (included)"),
    ("audit.find", "検索", "Find"),
    ("audit.export", "CSVで書き出す", "Export as CSV"),
    (
        "audit.kept_since",
        "{} 以降の記録を保持しています（1か月）",
        "Entries are kept for one month: since {}",
    ),
    ("audit.at", "日時", "When"),
    ("audit.detail", "詳細", "Detail"),
    ("audit.older", "さらに古い記録", "Older entries"),
    ("audit.sessions", "ログイン中のセッション", "Live sessions"),
    ("audit.signed_in", "ログイン日時", "Signed in"),
    ("audit.last_seen", "最終操作", "Last seen"),
    ("audit.expires", "有効期限", "Expires"),
    ("audit.browser", "ブラウザ", "Browser"),
    ("audit.end", "終了させる", "End"),
    ("audit.this_session", "このセッション", "this session"),
    (
        "audit.own_session",
        "自分のセッションは「ログアウト」で終了します",
        "End your own session with Sign out",
    ),
    ("ended.signed_out", "ログアウトしました", "You signed out"),
    (
        "ended.idle",
        "一定時間操作がなかったため、ログアウトしました",
        "You were signed out after a period without activity",
    ),
    (
        "ended.signed_in_elsewhere",
        "同じアカウントで別の場所からログインがあったため、ログアウトしました",
        "You were signed out because this account signed in somewhere else",
    ),
    (
        "ended.ended_by_administrator",
        "管理者によってログアウトされました",
        "An administrator signed you out",
    ),
    (
        "ended.password_changed",
        "パスワードが変更されたため、ログアウトしました",
        "You were signed out because the password was changed",
    ),
    (
        "ended.account_disabled",
        "このアカウントは無効になりました",
        "This account has been disabled",
    ),
];

/// The text for `key`; the key itself where there is none, so a gap shows instead of hiding.
pub fn t(lang: Lang, key: &str) -> String {
    TEXT.iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, ja, en)| match lang {
            Lang::Ja => *ja,
            Lang::En => *en,
        })
        .unwrap_or(key)
        .to_string()
}

/// [`t`] with `{}` replaced by `value`.
pub fn tf(lang: Lang, key: &str, value: impl std::fmt::Display) -> String {
    t(lang, key).replacen("{}", &value.to_string(), 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::Kind;

    #[test]
    fn every_key_is_translated_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, ja, en) in TEXT {
            assert!(seen.insert(*key), "{key} twice");
            assert!(!ja.is_empty() && !en.is_empty(), "{key}");
            assert_eq!(ja.contains("{}"), en.contains("{}"), "{key}");
        }
        for reason in [
            "signed_out",
            "idle",
            "signed_in_elsewhere",
            "ended_by_administrator",
            "password_changed",
            "account_disabled",
        ] {
            let key = format!("ended.{reason}");
            assert_ne!(
                t(Lang::En, &key),
                key,
                "every reason the server gives is worded"
            );
        }
        for kind in Kind::ALL {
            let key = format!("kind.{}", kind.key());
            assert_ne!(t(Lang::Ja, &key), key);
        }
        for key in crate::intake::COUNTS
            .iter()
            .map(|c| format!("imports.count.{c}"))
            .chain(["sending", "reading", "done", "failed"].map(|s| format!("imports.stage.{s}")))
        {
            assert_ne!(t(Lang::En, &key), key);
        }
        for key in tabiji_model::Op::ALL
            .iter()
            .map(|op| format!("right.{}", op.name()))
            .chain(tabiji_model::rights::SYSTEM_TARGETS.map(|t| format!("target.{t}")))
        {
            assert_ne!(t(Lang::Ja, &key), key);
        }
        for kind in crate::draft::Kind::ALL {
            for key in [
                format!("content.{}", kind.path()),
                format!("content.one.{}", kind.path()),
            ] {
                assert_ne!(t(Lang::En, &key), key);
            }
            for channel in crate::draft::CHANNELS {
                assert_ne!(t(Lang::En, &format!("channel.{channel}")), "");
                for input in crate::draft::inputs_of(kind, channel) {
                    let key = format!("content.input.{input}");
                    assert_ne!(t(Lang::En, &key), key);
                }
            }
        }
        let design_keys = crate::design::CHARTS
            .map(|c| format!("chart.{c}"))
            .into_iter()
            .chain(crate::design::BUCKETS.map(|b| format!("bucket.{b}")))
            .chain(crate::design::VERBS.map(|v| format!("verb.{v}")))
            .chain(crate::design::MESSAGE_GROUPS.map(|g| format!("mgroup.{g}")))
            .chain(crate::design::MESSAGE_MEASURES.map(|m| format!("measure.{m}")))
            .chain(
                ["needs_group", "needs_date", "needs_one_each", "needs_steps"]
                    .map(|r| format!("reports.{r}")),
            );
        for key in design_keys {
            assert_ne!(t(Lang::En, &key), key);
        }
        let every_type = serde_json::json!([{"type": "text"}, {"type": "integer"}, {"type": "boolean"},
            {"type": "date"}, {"type": "month_day"}, {"type": "timestamp"},
            {"type": "multi_choice", "options": []}]);
        for ty in every_type.as_array().unwrap() {
            let ty: tabiji_model::field::FieldType = serde_json::from_value(ty.clone()).unwrap();
            for op in tabiji_model::filter::Operator::for_type(&ty) {
                let key = format!("op.{}", op.name());
                assert_ne!(t(Lang::En, &key), key);
            }
        }
    }

    #[test]
    fn japanese_unless_english_is_asked_for() {
        assert_eq!(Lang::from_code("en-US"), Lang::En);
        assert_eq!(Lang::from_code("ja-JP"), Lang::Ja);
        assert_eq!(Lang::from_code("fr"), Lang::Ja);
        assert_eq!(
            tf(Lang::En, "editor.predicted", 12),
            "Predicted: 12 contacts"
        );
        assert_eq!(t(Lang::En, "no.such.key"), "no.such.key");
    }
}
