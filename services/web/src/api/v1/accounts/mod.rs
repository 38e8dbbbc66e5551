//! `/api/v1/accounts`: sign-up, the signed-in user's own account, and looking accounts up; the
//! routes on another account live in the submodules named like their URLs.

pub mod block;
pub mod follow;
pub mod mute;
pub mod relationships;
pub mod search;
pub mod statuses;

pub(crate) use relationships::{own_list, relationship_on};

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use stampede_mastodon::{Account, CredentialAccount, Profile as ProfileEntity, Token};

use crate::accounts::{self, FieldSource};
use crate::auth::{Auth, ClientIp, Viewer};
use crate::error::{ApiError, Validation};
use crate::payload::{Params, WithFiles, flex};
use crate::registration::SignUp;
use crate::scopes;
use crate::{AppState, ratelimit};
use stampede_social::media::{self, Profile};

#[derive(Debug, Deserialize)]
pub struct CreateAccount {
    #[serde(default, deserialize_with = "flex::scalar")]
    username: String,
    #[serde(default, deserialize_with = "flex::scalar")]
    email: String,
    #[serde(default, deserialize_with = "flex::scalar")]
    password: String,
    #[serde(default, deserialize_with = "flex::opt_flag")]
    agreement: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    locale: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    reason: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    date_of_birth: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    invite_code: Option<String>,
}

/// Turns sign-ups away while the hashing pool is saturated, before anything else is done for
/// them — not even the token lookup — so that under a flood a refusal costs only the HTTP
/// exchange.
pub async fn admission(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match state.passwords.precheck() {
        Ok(()) => next.run(request).await,
        Err(busy) => ApiError::too_many_requests(busy.retry_after).into_response(),
    }
}

/// `POST /api/v1/accounts`: needs an app token with `write:accounts`; answers with the new
/// user's token (usable once the e-mail is confirmed and, in approval mode, the account approved).
pub async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: Auth,
    Params(p): Params<CreateAccount>,
) -> Result<Json<Token>, ApiError> {
    auth.require(scopes::ACCOUNTS_WRITE)?;
    let app_id = auth
        .application_id
        .ok_or_else(|| ApiError::forbidden("This action is outside the authorized scopes"))?;
    ratelimit::check(&state, ratelimit::SIGN_UP, ip).await?;
    let registered = state
        .register(
            SignUp {
                username: p.username,
                email: p.email,
                password: p.password,
                agreement: p.agreement.unwrap_or(false),
                locale: p.locale,
                reason: p.reason,
                date_of_birth: p.date_of_birth,
                invite_code: p.invite_code,
            },
            ip,
            Some((app_id, auth.scopes.clone())),
        )
        .await?;
    registered
        .access_token
        .map(Json)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("API sign-up without a token")))
}

async fn credential_account(
    state: &AppState,
    account_id: i64,
) -> Result<CredentialAccount, ApiError> {
    // A hot read (clients call it on every start): a leased connection, kept without a ping.
    let mut conn = state.ctx.leases.take().await?;
    let account = accounts::find(&mut *conn, account_id).await?;
    let user = accounts::user_of(&mut *conn, account_id).await?;
    conn.finish();
    let (Some(account), Some(user)) = (account, user) else {
        return Err(ApiError::not_found());
    };
    Ok(state.render_credential_account(&account, &user))
}

pub async fn verify_credentials(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<CredentialAccount>, ApiError> {
    auth.require(scopes::OWN_ACCOUNT_READ)?;
    let user = auth.user()?;
    Ok(Json(credential_account(&state, user.account_id).await?))
}

#[derive(Debug, Deserialize, Default)]
pub struct SourceParams {
    privacy: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    sensitive: Option<bool>,
    language: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FieldsParam {
    /// `fields_attributes[0][name]=…` (a hash keyed by index) or JSON `{"0": {...}}`.
    Map(std::collections::BTreeMap<String, FieldSource>),
    /// `fields_attributes[][name]=…` or a JSON array.
    List(Vec<FieldSource>),
}

#[derive(Debug, Deserialize)]
pub struct UpdateCredentials {
    display_name: Option<String>,
    note: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    locked: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    bot: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    discoverable: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    indexable: Option<bool>,
    fields_attributes: Option<FieldsParam>,
    source: Option<SourceParams>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    hide_collections: Option<bool>,
    avatar_description: Option<String>,
    header_description: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    show_media: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    show_media_replies: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    show_featured: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    attribution_domains: Option<Vec<String>>,
}

/// Profile limits (Mastodon's).
const MAX_DISPLAY_NAME: usize = 30;
const MAX_NOTE: usize = 500;
const MAX_FIELDS: usize = 4;
const MAX_FIELD_LEN: usize = 255;
const MAX_IMAGE_DESCRIPTION: usize = 1_500;
const MAX_ATTRIBUTION_DOMAINS: usize = 10;

pub async fn update_credentials(
    State(state): State<AppState>,
    auth: Auth,
    form: WithFiles<UpdateCredentials>,
) -> Result<Json<CredentialAccount>, ApiError> {
    auth.require(scopes::ACCOUNTS_WRITE)?;
    let account_id = auth.user()?.account_id;
    update_profile(&state, account_id, form).await?;
    Ok(Json(credential_account(&state, account_id).await?))
}

/// Checks and applies a profile update (`update_credentials` and `PATCH /api/v1/profile`):
/// 422 with nothing changed when a value is invalid; the images are stored first, then the
/// profile changes in one transaction and remote followers are told.
async fn update_profile(
    state: &AppState,
    account_id: i64,
    mut form: WithFiles<UpdateCredentials>,
) -> Result<(), ApiError> {
    let avatar = form.take("avatar");
    let header = form.take("header");
    let p = form.params;
    let mut v = Validation::default();
    if p.display_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_DISPLAY_NAME)
    {
        v.add(
            "display_name",
            "ERR_TOO_LONG",
            "is too long (maximum is 30 characters)",
        );
    }
    if p.note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE)
    {
        v.add(
            "note",
            "ERR_TOO_LONG",
            "is too long (maximum is 500 characters)",
        );
    }
    let fields = p.fields_attributes.map(|f| {
        let list = match f {
            FieldsParam::Map(map) => {
                // Keys are indexes ("0", "1", …): keep their numeric order.
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by_key(|(k, _)| k.parse::<u32>().unwrap_or(u32::MAX));
                entries.into_iter().map(|(_, f)| f).collect::<Vec<_>>()
            }
            FieldsParam::List(list) => list,
        };
        list.into_iter()
            .filter(|f| !(f.name.trim().is_empty() && f.value.trim().is_empty()))
            .collect::<Vec<_>>()
    });
    if let Some(fields) = &fields {
        if fields.len() > MAX_FIELDS {
            v.add(
                "fields",
                "ERR_TOO_LONG",
                "is too long (maximum is 4 fields)",
            );
        }
        if fields.iter().any(|f| {
            f.name.chars().count() > MAX_FIELD_LEN || f.value.chars().count() > MAX_FIELD_LEN
        }) {
            v.add(
                "fields",
                "ERR_TOO_LONG",
                "has a name or value that is too long (maximum is 255 characters)",
            );
        }
    }
    for (field, description) in [
        ("avatar_description", &p.avatar_description),
        ("header_description", &p.header_description),
    ] {
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_IMAGE_DESCRIPTION)
        {
            v.add(
                field,
                "ERR_TOO_LONG",
                "is too long (maximum is 1500 characters)",
            );
        }
    }
    let attribution_domains = p.attribution_domains.map(|domains| {
        domains
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
    });
    if let Some(domains) = &attribution_domains {
        if domains.len() > MAX_ATTRIBUTION_DOMAINS {
            v.add(
                "attribution_domains",
                "ERR_TOO_LONG",
                "is too long (maximum is 10 domains)",
            );
        }
        if domains
            .iter()
            .any(|d| url::Host::parse(d).is_err() || d.contains(['/', ':', '@']))
        {
            v.add(
                "attribution_domains",
                "ERR_INVALID",
                "contains an invalid domain",
            );
        }
    }
    let source = p.source.unwrap_or_default();
    if let Some(privacy) = source.privacy.as_deref()
        && !["public", "unlisted", "private", "direct"].contains(&privacy)
    {
        v.add(
            "source.privacy",
            "ERR_INCLUSION",
            "is not included in the list",
        );
    }
    if let Some(language) = source.language.as_deref()
        && !language.is_empty()
        && !(language.len() <= 3 && language.chars().all(|c| c.is_ascii_lowercase()))
    {
        v.add(
            "source.language",
            "ERR_INCLUSION",
            "is not included in the list",
        );
    }
    v.finish()?;

    // The images are checked and stored first; the profile then changes in one transaction.
    let mut images = Vec::new();
    for (image, file) in [(Profile::Avatar, avatar), (Profile::Header, header)] {
        if let Some(file) = file {
            let key = media::store_profile_image(
                &state.ctx.storage,
                &state.uploads.limits,
                account_id,
                image,
                file.bytes,
            )
            .await?;
            images.push((image, key));
        }
    }
    let mut tx = state.ctx.db.begin().await?;
    for (image, key) in &images {
        media::set_profile_image(&mut tx, account_id, *image, Some(key)).await?;
    }
    sqlx::query(
        "UPDATE accounts SET \
           display_name = coalesce($2, display_name), note = coalesce($3, note), \
           locked = coalesce($4, locked), bot = coalesce($5, bot), \
           discoverable = coalesce($6, discoverable), indexable = coalesce($7, indexable), \
           fields = coalesce($8, fields), hide_collections = coalesce($9, hide_collections), \
           avatar_description = coalesce($10, avatar_description), \
           header_description = coalesce($11, header_description), \
           show_media = coalesce($12, show_media), \
           show_media_replies = coalesce($13, show_media_replies), \
           show_featured = coalesce($14, show_featured), \
           attribution_domains = coalesce($15, attribution_domains), updated_at = now() \
         WHERE id = $1",
    )
    .bind(account_id)
    .bind(p.display_name.map(|n| n.trim().to_string()))
    .bind(p.note)
    .bind(p.locked)
    .bind(p.bot)
    .bind(p.discoverable)
    .bind(p.indexable)
    .bind(fields.map(sqlx::types::Json))
    .bind(p.hide_collections)
    .bind(p.avatar_description)
    .bind(p.header_description)
    .bind(p.show_media)
    .bind(p.show_media_replies)
    .bind(p.show_featured)
    .bind(attribution_domains)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE users SET source_privacy = coalesce($2, source_privacy), \
           source_sensitive = coalesce($3, source_sensitive), \
           source_language = CASE WHEN $4::text IS NULL THEN source_language ELSE nullif($4, '') END \
         WHERE account_id = $1",
    )
    .bind(account_id)
    .bind(source.privacy)
    .bind(source.sensitive)
    .bind(source.language)
    .execute(&mut *tx)
    .await?;
    // Remote followers get the new profile. An account without a key has never been seen by
    // another server: nothing to tell.
    let public_key: Option<String> =
        sqlx::query_scalar("SELECT public_key FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
    if let Some(public_key) = public_key
        && let Some(row) = accounts::find(&mut *tx, account_id).await?
    {
        let mut actor = stampede_social::activitypub::person(
            &state.base_url(),
            &state.render_account(&row),
            row.indexable,
            &public_key,
        );
        let (aliases, moved) =
            stampede_social::moves::identity(&mut tx, &state.base_url(), account_id).await?;
        stampede_social::moves::decorate(&mut actor, aliases, moved);
        stampede_social::outbound::profile_updated(&mut tx, account_id, actor).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct ProfileSettings {
    avatar_description: String,
    header_description: String,
    show_media: bool,
    show_media_replies: bool,
    show_featured: bool,
    attribution_domains: Vec<String>,
}

async fn profile(state: &AppState, account_id: i64) -> Result<ProfileEntity, ApiError> {
    let account = credential_account(state, account_id).await?;
    let settings: ProfileSettings = sqlx::query_as(
        "SELECT avatar_description, header_description, show_media, show_media_replies, \
                show_featured, attribution_domains FROM accounts WHERE id = $1",
    )
    .bind(account_id)
    .fetch_one(&state.ctx.db)
    .await?;
    let row = accounts::find(&state.ctx.db, account_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let a = account.account;
    // Unlike an Account, a Profile shows no picture where none was set.
    let avatar = (row.avatar_key.is_some() || row.avatar_remote_url.is_some()).then_some(a.avatar);
    let header = (row.header_key.is_some() || row.header_remote_url.is_some()).then_some(a.header);
    Ok(ProfileEntity {
        id: a.id,
        display_name: a.display_name,
        note: account.source.note,
        fields: account.source.fields,
        avatar_static: avatar.clone(),
        avatar,
        avatar_description: settings.avatar_description,
        header_static: header.clone(),
        header,
        header_description: settings.header_description,
        locked: a.locked,
        bot: a.bot,
        discoverable: a.discoverable,
        indexable: a.indexable,
        hide_collections: a.hide_collections,
        show_media: settings.show_media,
        show_media_replies: settings.show_media_replies,
        show_featured: settings.show_featured,
        attribution_domains: settings.attribution_domains,
    })
}

/// `GET /api/v1/profile` (Mastodon 4.6): the viewer's own profile, as they edit it.
pub async fn show_profile(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<ProfileEntity>, ApiError> {
    auth.require(scopes::OWN_ACCOUNT_READ)?;
    let account_id = auth.user()?.account_id;
    Ok(Json(profile(&state, account_id).await?))
}

/// `PATCH /api/v1/profile`: the same parameters as `update_credentials`, answered with the
/// Profile.
pub async fn update_profile_v2(
    State(state): State<AppState>,
    auth: Auth,
    form: WithFiles<UpdateCredentials>,
) -> Result<Json<ProfileEntity>, ApiError> {
    auth.require(scopes::ACCOUNTS_WRITE)?;
    let account_id = auth.user()?.account_id;
    update_profile(&state, account_id, form).await?;
    Ok(Json(profile(&state, account_id).await?))
}

/// `DELETE /api/v1/profile/avatar`: back to the default picture.
pub async fn delete_avatar(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<CredentialAccount>, ApiError> {
    remove_image(state, auth, Profile::Avatar).await
}

/// `DELETE /api/v1/profile/header`.
pub async fn delete_header(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<CredentialAccount>, ApiError> {
    remove_image(state, auth, Profile::Header).await
}

async fn remove_image(
    state: AppState,
    auth: Auth,
    image: Profile,
) -> Result<Json<CredentialAccount>, ApiError> {
    auth.require(scopes::ACCOUNTS_WRITE)?;
    let account_id = auth.user()?.account_id;
    let mut tx = state.ctx.db.begin().await?;
    media::set_profile_image(&mut tx, account_id, image, None).await?;
    tx.commit().await?;
    Ok(Json(credential_account(&state, account_id).await?))
}

/// Accounts a viewer may see: not suspended (and, for local ones, not still pending).
async fn visible(state: &AppState, account: &accounts::AccountRow) -> Result<bool, ApiError> {
    if account.suspended_at.is_some() {
        return Ok(false);
    }
    if account.domain.is_none() {
        let user = accounts::user_of(&state.ctx.db, account.id).await?;
        return Ok(user.is_some_and(|u| u.approved && u.confirmed_at.is_some() && !u.disabled));
    }
    Ok(true)
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Account>, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let account = find_account(&state, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !visible(&state, &account).await? {
        return Err(ApiError::not_found());
    }
    Ok(Json(with_moved(&state, &account).await?))
}

/// The account as the API shows it alone, with the account it moved to (`moved`).
/// An account by id, from the read replica when it serves (the primary when the replica does
/// not hold it yet: an account made a moment ago).
async fn find_account(state: &AppState, id: i64) -> Result<Option<accounts::AccountRow>, ApiError> {
    let reads = &state.ctx.reads;
    if let Some(row) = reads
        .read(|db| async move { accounts::find(&db, id).await })
        .await?
    {
        return Ok(Some(row));
    }
    Ok(if reads.replica_in_use() {
        accounts::find(&state.ctx.db, id).await?
    } else {
        None
    })
}

pub async fn with_moved(state: &AppState, row: &accounts::AccountRow) -> Result<Account, ApiError> {
    let mut account = state.render_account(row);
    if let Some(target) = row.moved_to_account_id
        && let Some(target) = find_account(state, target).await?
    {
        account.moved = Some(Box::new(state.render_account(&target)));
    }
    Ok(account)
}

#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    acct: Option<String>,
}

pub async fn lookup(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<LookupQuery>,
) -> Result<Json<Account>, ApiError> {
    // Anyone may look up; a token that is given must allow reading accounts.
    viewer.account(scopes::ACCOUNTS_READ)?;
    let acct = q.acct.unwrap_or_default();
    let acct = acct.trim_start_matches('@');
    let username = match acct.split_once('@') {
        None => acct,
        Some((user, domain))
            if domain.eq_ignore_ascii_case(&state.ctx.config.local_domain)
                || domain.eq_ignore_ascii_case(&state.ctx.config.web_domain) =>
        {
            user
        }
        // Another server's, if known already: like Mastodon (`skip_webfinger`), a lookup
        // fetches nothing, so nobody makes the server call other hosts by looking up (search
        // with `resolve=true` does that, for signed-in users).
        Some((user, domain)) => {
            let remote = state
                .resolver
                .known_by_handle(user, domain)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let account = accounts::find(&state.ctx.db, remote.id)
                .await?
                .filter(|a| a.suspended_at.is_none())
                .ok_or_else(ApiError::not_found)?;
            return Ok(Json(with_moved(&state, &account).await?));
        }
    };
    let reads = &state.ctx.reads;
    let mut account = reads
        .read(|db| async move { accounts::find_local(&db, username).await })
        .await?;
    if account.is_none() && reads.replica_in_use() {
        // The replica may not hold an account made a moment ago.
        account = accounts::find_local(&state.ctx.db, username).await?;
    }
    let account = account.ok_or_else(ApiError::not_found)?;
    if !visible(&state, &account).await? {
        return Err(ApiError::not_found());
    }
    Ok(Json(with_moved(&state, &account).await?))
}

/// Ids asked for at once (`id[]=…`), at most [`MAX_IDS`].
#[derive(Debug, Deserialize)]
pub struct IdsQuery {
    #[serde(default, deserialize_with = "flex::opt_list")]
    id: Option<Vec<String>>,
}

/// Mastodon's cap on `id[]` lists.
pub const MAX_IDS: usize = 40;

impl IdsQuery {
    /// The ids as numbers (unparseable ones left out); 422 past [`MAX_IDS`].
    pub fn ids(&self) -> Result<Vec<i64>, ApiError> {
        let ids = self.id.as_deref().unwrap_or_default();
        if ids.len() > MAX_IDS {
            return Err(ApiError::unprocessable(format!(
                "Too many ids (at most {MAX_IDS})"
            )));
        }
        Ok(ids.iter().filter_map(|id| id.trim().parse().ok()).collect())
    }
}

/// `GET /api/v1/accounts?id[]=…`: several accounts at once, in the order asked, without the
/// ones that do not exist or may not be seen.
pub async fn index(
    State(state): State<AppState>,
    Params(q): Params<IdsQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let ids = q.ids()?;
    let wanted = &ids;
    let rows = state
        .ctx
        .reads
        .read(|db| async move { accounts::find_many(&db, wanted).await })
        .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(row) = rows.iter().find(|r| r.id == id)
            && visible(&state, row).await?
        {
            out.push(state.render_account(row));
        }
    }
    Ok(Json(out))
}

/// `GET /api/v1/preferences`: the user's posting defaults, as Mastodon names them.
pub async fn preferences(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth.require(scopes::ACCOUNTS_READ)?;
    let account_id = auth.user()?.account_id;
    let (privacy, sensitive, language): (String, bool, Option<String>) = sqlx::query_as(
        "SELECT source_privacy, source_sensitive, source_language FROM users WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_one(&state.ctx.db)
    .await?;
    Ok(Json(serde_json::json!({
        "posting:default:visibility": privacy,
        "posting:default:sensitive": sensitive,
        "posting:default:language": language,
        "posting:default:quote_policy": "public",
        "reading:expand:media": "default",
        "reading:expand:spoilers": false,
        "reading:autoplay:gifs": false,
    })))
}

/// `GET /api/v1/accounts/:id/identity_proofs`: Mastodon removed identity proofs in 3.5 and
/// answers an empty list for any account that exists; so does Stampede.
pub async fn identity_proofs(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    state.target_account(&id).await?;
    Ok(Json(Vec::new()))
}

#[derive(Debug, Deserialize)]
pub struct ResendConfirmation {
    email: Option<String>,
}

/// `POST /api/v1/emails/confirmations`: sends the confirmation mail again, to a corrected
/// address when `email` is given. Only for a user still waiting to confirm, through the app
/// they signed up with (Mastodon's rules and answers).
pub async fn resend_confirmation(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<ResendConfirmation>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = auth.any_user()?;
    let row: Option<(Option<i64>, bool, String, String)> = sqlx::query_as(
        "SELECT u.created_by_application_id, u.confirmed_at IS NOT NULL, u.email, a.username \
         FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1",
    )
    .bind(user.user_id)
    .fetch_optional(&state.ctx.db)
    .await?;
    let Some((app, confirmed, current_email, username)) = row else {
        return Err(ApiError::not_found());
    };
    if app.is_none() || app != auth.application_id {
        return Err(ApiError::forbidden(
            "This method is only available to the application the user originally signed-up with",
        ));
    }
    if confirmed {
        return Err(ApiError::forbidden(
            "This method is only available while the e-mail is awaiting confirmation",
        ));
    }
    let email = match p.email.as_deref().map(str::trim) {
        Some(email) if email != current_email => {
            let mut v = Validation::default();
            if !crate::accounts::valid_email(email) {
                v.add("email", "ERR_INVALID", "is invalid");
            } else {
                let found = state.conflicts("", email).await?;
                if found.email_taken {
                    v.add("email", "ERR_TAKEN", "has already been taken");
                }
                if found.domain_block.is_some() || found.canonical_blocked {
                    v.add("email", "ERR_BLOCKED", "is not allowed");
                }
            }
            v.finish()?;
            email.to_string()
        }
        _ => current_email,
    };
    let confirmation = crate::tokens::generate();
    let link = format!(
        "{}/auth/confirmation?confirmation_token={confirmation}",
        state.base_url()
    );
    let mail = state
        .templates
        .confirmation_mail(
            &email,
            &username,
            &link,
            &state.ctx.config.web.site_title,
            true,
        )
        .map_err(ApiError::internal)?;
    // The new address and token and the mail, at once: a failure leaves the old ones.
    let mut tx = state.ctx.db.begin().await?;
    sqlx::query(
        "UPDATE users SET email = $2, confirmation_token_hash = $3, confirmation_sent_at = now() \
         WHERE id = $1",
    )
    .bind(user.user_id)
    .bind(&email)
    .bind(crate::tokens::digest(&confirmation))
    .execute(&mut *tx)
    .await?;
    stampede_queue::outbox::send(&mut tx, &stampede_runtime::mail::MailJob::Send(mail)).await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({})))
}
