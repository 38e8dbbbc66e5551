//! Sign-up, log-in, log-out, e-mail confirmation and password reset pages.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;
use stampede_runtime::config::RegistrationsMode;

use super::{SESSION_COOKIE, cookie, csrf, csrf_ok, set_cookie};
use crate::auth::ClientIp;
use crate::error::Validation;
use crate::payload::{Params, flex};
use crate::registration::{RegisterError, SignUp, check_password_length};
use crate::sign_in::check_password;
use crate::{AppState, mail, ratelimit, tokens};

/// How long a session cookie lives: two weeks, like Mastodon's "remember me".
const SESSION_SECONDS: u64 = 14 * 24 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/auth/sign_up", get(sign_up_form).post(sign_up))
        .route("/auth/sign_in", get(sign_in_form).post(sign_in))
        .route("/auth/sign_out", axum::routing::post(sign_out))
        .route("/auth/confirmation", get(confirm))
        .route("/auth/password/new", get(password_new))
        .route("/auth/password", axum::routing::post(password_create))
        .route(
            "/auth/password/edit",
            get(password_edit).post(password_update),
        )
}

/// The signed-in account of this browser, if any.
pub async fn session_account(state: &AppState, headers: &HeaderMap) -> Option<(i64, String)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let row = sqlx::query(
        "SELECT a.id, a.username FROM web_sessions s JOIN accounts a ON a.id = s.account_id \
         JOIN users u ON u.account_id = a.id \
         WHERE s.id_hash = $1 AND s.created_at > now() - interval '14 days' \
           AND a.suspended_at IS NULL AND NOT u.disabled",
    )
    .bind(tokens::digest(&token))
    .fetch_optional(&state.ctx.db)
    .await
    .ok()??;
    Some((row.try_get("id").ok()?, row.try_get("username").ok()?))
}

pub(super) fn redirect(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Only local paths may be returned to, so the log-in page cannot be used to redirect elsewhere.
fn safe_return_to(return_to: Option<&str>) -> String {
    // A path on this server: starts with one '/', and holds no backslash, whitespace or control
    // character (browsers drop tabs and newlines, which would turn "/\t/evil" into "//evil").
    match return_to {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path
                    .chars()
                    .any(|c| c == '\\' || c.is_whitespace() || c.is_control()) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn return_to_stays_on_this_server() {
        assert_eq!(
            safe_return_to(Some("/oauth/authorize?a=1")),
            "/oauth/authorize?a=1"
        );
        for bad in [
            "//evil.com",
            "/\t/evil.com",
            "/\\evil.com",
            "https://evil.com",
            "/\n/evil",
            "evil",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
    }
}

pub(super) fn bad_token(state: &AppState) -> Response {
    state.notice(
        StatusCode::UNPROCESSABLE_ENTITY,
        "This form has expired",
        &["Go back, reload the page and try again."],
    )
}

fn retry_later(state: &AppState, wait: std::time::Duration) -> Response {
    let mut response = state.notice(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        &["Too many attempts right now. Please try again a little later."],
    );
    // Whole seconds, rounded up, as the API's Retry-After.
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        .max(1)
        .to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set) = csrf(&state, &headers);
    match session_account(&state, &headers).await {
        Some((_, username)) => state.page(
            StatusCode::OK,
            "notice.html",
            json!({
                "heading": format!("You are logged in as @{username}"),
                "paragraphs": ["Use any Mastodon app to read and post."],
                "signed_in": true,
                "csrf": token,
            }),
            set.into_iter().collect(),
        ),
        None => state.page(
            StatusCode::OK,
            "notice.html",
            json!({
                "heading": state.ctx.config.web.site_title,
                "paragraphs": ["A Mastodon-compatible social server."],
                "links": [
                    { "href": "/auth/sign_up", "text": "Create an account" },
                    { "href": "/auth/sign_in", "text": "Log in" },
                ],
            }),
            Vec::new(),
        ),
    }
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
struct SignUpForm {
    #[serde(default)]
    authenticity_token: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default, skip_serializing)]
    password_confirmation: String,
    #[serde(default)]
    date_of_birth: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    invite_code: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    agreement: Option<bool>,
}

async fn rules(state: &AppState) -> Vec<serde_json::Value> {
    sqlx::query("SELECT text, hint FROM server_rules ORDER BY position, id")
        .fetch_all(&state.ctx.db)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            json!({
                "text": r.try_get::<String, _>("text").unwrap_or_default(),
                "hint": r.try_get::<String, _>("hint").unwrap_or_default(),
            })
        })
        .collect()
}

async fn render_sign_up(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    form: &SignUpForm,
    errors: Vec<String>,
) -> Response {
    let (token, set) = csrf(state, headers);
    let registrations = &state.ctx.config.registrations;
    state.page(
        status,
        "sign_up.html",
        json!({
            "csrf": token,
            "form": form,
            "errors": errors,
            "rules": rules(state).await,
            "min_age": registrations.min_age,
            "approval_required": registrations.mode == RegistrationsMode::Approved,
            "invites_enabled": registrations.mode != RegistrationsMode::Open,
            "invite_required": registrations.mode == RegistrationsMode::None,
        }),
        set.into_iter().collect(),
    )
}

async fn sign_up_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    render_sign_up(
        &state,
        &headers,
        StatusCode::OK,
        &SignUpForm::default(),
        Vec::new(),
    )
    .await
}

async fn sign_up(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Params(form): Params<SignUpForm>,
) -> Response {
    if !csrf_ok(&headers, form.authenticity_token.as_deref()) {
        return bad_token(&state);
    }
    if let Err(wait) = ratelimit::check_wait(&state, ratelimit::SIGN_UP, ip).await {
        return retry_later(&state, wait);
    }
    let input = SignUp {
        username: form.username.clone(),
        email: form.email.clone(),
        password: form.password.clone(),
        agreement: form.agreement.unwrap_or(false),
        locale: None,
        reason: form.reason.clone(),
        date_of_birth: form.date_of_birth.clone(),
        invite_code: form.invite_code.clone(),
    };
    if form.password != form.password_confirmation {
        // Show every problem at once, not only this one.
        let mut v = match state.validate_sign_up(&input, ip).await {
            Ok(checked) => checked.validation,
            Err(RegisterError::Closed) => Validation::default(),
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        };
        v.add(
            "password_confirmation",
            "ERR_CONFIRMATION",
            "doesn't match Password",
        );
        return render_sign_up(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            v.messages(),
        )
        .await;
    }
    match state.register(input, ip, None).await {
        Ok(registered) => {
            let mut paragraphs = vec![
                "We sent you an e-mail with a link to confirm your address. Open it to finish signing up.",
            ];
            if !registered.approved {
                paragraphs.push("A moderator will also review your sign-up; we will e-mail you once it is approved.");
            }
            state.notice(StatusCode::OK, "Check your inbox", &paragraphs)
        }
        Err(RegisterError::Invalid(v)) => {
            render_sign_up(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                v.messages(),
            )
            .await
        }
        Err(RegisterError::Busy(busy)) => retry_later(&state, busy.retry_after),
        Err(RegisterError::Refused) => state.notice(
            StatusCode::FORBIDDEN,
            "Sign-ups are not allowed",
            &["This server does not accept sign-ups from your network."],
        ),
        Err(RegisterError::Closed) => state.notice(
            StatusCode::FORBIDDEN,
            "Registrations are closed",
            &["This server is not accepting new accounts right now, except with an invite code."],
        ),
        Err(RegisterError::Internal(e)) => crate::error::ApiError::internal(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

async fn sign_in_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Response {
    let (token, set) = csrf(&state, &headers);
    state.page(
        StatusCode::OK,
        "sign_in.html",
        json!({ "csrf": token, "return_to": safe_return_to(q.return_to.as_deref()), "email": "" }),
        set.into_iter().collect(),
    )
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    authenticity_token: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    return_to: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Params(form): Params<SignInForm>,
) -> Response {
    if !csrf_ok(&headers, form.authenticity_token.as_deref()) {
        return bad_token(&state);
    }
    if let Err(wait) = ratelimit::check_wait(&state, ratelimit::SIGN_IN, ip).await {
        return retry_later(&state, wait);
    }
    let return_to = safe_return_to(form.return_to.as_deref());
    let signed_in = match check_password(&state, &form.email, &form.password).await {
        Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => {
            return retry_later(&state, std::time::Duration::from_secs(1));
        }
        Err(e) => return e.into_response(),
        Ok(result) => result,
    };
    let Some(signed_in) = signed_in else {
        let (token, set) = csrf(&state, &headers);
        return state.page(
            StatusCode::UNAUTHORIZED,
            "sign_in.html",
            json!({
                "csrf": token,
                "return_to": return_to,
                "email": form.email,
                "errors": ["Invalid e-mail address or password."],
            }),
            set.into_iter().collect(),
        );
    };
    if !signed_in.confirmed {
        return state.notice(
            StatusCode::FORBIDDEN,
            "Confirm your e-mail address first",
            &["Open the link in the e-mail we sent you when you signed up, then log in again."],
        );
    }
    if !signed_in.approved {
        return state.notice(
            StatusCode::FORBIDDEN,
            "Your sign-up is pending review",
            &["A moderator will review it soon; we will e-mail you once it is approved."],
        );
    }
    if signed_in.disabled {
        return state.notice(StatusCode::FORBIDDEN, "Your account is disabled", &[]);
    }
    let session = tokens::generate();
    let created = sqlx::query("INSERT INTO web_sessions (id_hash, account_id) VALUES ($1, $2)")
        .bind(tokens::digest(&session))
        .bind(signed_in.account_id)
        .execute(&state.ctx.db)
        .await;
    if let Err(e) = created {
        return crate::error::ApiError::from(e).into_response();
    }
    redirect(
        &return_to,
        vec![set_cookie(
            &state,
            SESSION_COOKIE,
            &session,
            Some(SESSION_SECONDS),
        )],
    )
}

#[derive(Debug, Deserialize)]
struct TokenOnly {
    authenticity_token: Option<String>,
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(form): Params<TokenOnly>,
) -> Response {
    if !csrf_ok(&headers, form.authenticity_token.as_deref()) {
        return bad_token(&state);
    }
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        // If the session cannot be ended on the server, say so rather than pretend.
        if let Err(e) = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(tokens::digest(&session))
            .execute(&state.ctx.db)
            .await
        {
            return crate::error::ApiError::from(e).into_response();
        }
    }
    redirect(
        "/auth/sign_in",
        vec![set_cookie(&state, SESSION_COOKIE, "", Some(0))],
    )
}

#[derive(Debug, Deserialize)]
struct ConfirmQuery {
    confirmation_token: Option<String>,
}

async fn confirm(State(state): State<AppState>, Query(q): Query<ConfirmQuery>) -> Response {
    let Some(token) = q.confirmation_token.filter(|t| !t.is_empty()) else {
        return state.notice(
            StatusCode::NOT_FOUND,
            "This confirmation link is invalid",
            &[],
        );
    };
    let confirmed: Result<Option<(bool, i64)>, sqlx::Error> = sqlx::query_as(
        "UPDATE users SET confirmed_at = now(), confirmation_token_hash = NULL \
         WHERE confirmation_token_hash = $1 RETURNING approved, account_id",
    )
    .bind(tokens::digest(&token))
    .fetch_optional(&state.ctx.db)
    .await;
    if let Ok(Some((_, account))) = &confirmed {
        // Its tokens may act now: on this process's very next request, too.
        state.grants.forget_account(*account);
    }
    let approved = confirmed.map(|c| c.map(|(approved, _)| approved));
    match approved {
        Ok(Some(true)) => state.page(
            StatusCode::OK,
            "notice.html",
            json!({
                "heading": "Your e-mail address has been confirmed",
                "paragraphs": ["You can now log in with any Mastodon app."],
                "links": [{ "href": "/auth/sign_in", "text": "Log in" }],
            }),
            Vec::new(),
        ),
        Ok(Some(false)) => state.notice(
            StatusCode::OK,
            "Your e-mail address has been confirmed",
            &["A moderator still needs to approve your sign-up; we will e-mail you once they have."],
        ),
        Ok(None) => state.notice(
            StatusCode::NOT_FOUND,
            "This confirmation link is invalid",
            &["It may have been used already. Try logging in."],
        ),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

async fn password_new(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set) = csrf(&state, &headers);
    state.page(
        StatusCode::OK,
        "password_new.html",
        json!({ "csrf": token }),
        set.into_iter().collect(),
    )
}

#[derive(Debug, Deserialize)]
struct PasswordRequest {
    authenticity_token: Option<String>,
    #[serde(default)]
    email: String,
}

async fn password_create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Params(form): Params<PasswordRequest>,
) -> Response {
    if !csrf_ok(&headers, form.authenticity_token.as_deref()) {
        return bad_token(&state);
    }
    if let Err(wait) = ratelimit::check_wait(&state, ratelimit::SIGN_IN, ip).await {
        return retry_later(&state, wait);
    }
    let token = tokens::generate();
    let sent = async {
        let mut tx = state.ctx.db.begin().await?;
        let email: Option<String> = sqlx::query_scalar(
            "UPDATE users SET reset_token_hash = $1, reset_sent_at = now() \
             WHERE lower(email) = lower($2) RETURNING email",
        )
        .bind(tokens::digest(&token))
        .bind(form.email.trim())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(email) = email {
            let link = format!(
                "{}/auth/password/edit?reset_password_token={token}",
                state.base_url()
            );
            let mail =
                state
                    .templates
                    .reset_mail(&email, &link, &state.ctx.config.web.site_title)?;
            mail::enqueue(&mut tx, &mail).await?;
        }
        tx.commit().await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = sent {
        return crate::error::ApiError::internal(e).into_response();
    }
    // The same answer whether or not the address has an account.
    state.notice(
        StatusCode::OK,
        "Check your inbox",
        &["If an account uses that address, we sent it a link to choose a new password."],
    )
}

#[derive(Debug, Deserialize)]
struct ResetQuery {
    reset_password_token: Option<String>,
}

async fn reset_token_valid(state: &AppState, token: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE reset_token_hash = $1 \
         AND reset_sent_at > now() - interval '2 hours')",
    )
    .bind(tokens::digest(token))
    .fetch_one(&state.ctx.db)
    .await
    .unwrap_or(false)
}

fn invalid_reset(state: &AppState) -> Response {
    state.page(
        StatusCode::NOT_FOUND,
        "notice.html",
        json!({
            "heading": "This link is invalid or has expired",
            "paragraphs": ["Ask for a new one."],
            "links": [{ "href": "/auth/password/new", "text": "Reset your password" }],
        }),
        Vec::new(),
    )
}

async fn password_edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ResetQuery>,
) -> Response {
    let token = q.reset_password_token.unwrap_or_default();
    if !reset_token_valid(&state, &token).await {
        return invalid_reset(&state);
    }
    let (csrf_token, set) = csrf(&state, &headers);
    state.page(
        StatusCode::OK,
        "password_edit.html",
        json!({ "csrf": csrf_token, "token": token }),
        set.into_iter().collect(),
    )
}

#[derive(Debug, Deserialize)]
struct PasswordUpdate {
    authenticity_token: Option<String>,
    #[serde(default)]
    reset_password_token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirmation: String,
}

async fn password_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(form): Params<PasswordUpdate>,
) -> Response {
    if !csrf_ok(&headers, form.authenticity_token.as_deref()) {
        return bad_token(&state);
    }
    if !reset_token_valid(&state, &form.reset_password_token).await {
        return invalid_reset(&state);
    }
    let mut v = Validation::default();
    check_password_length(&form.password, &mut v);
    if form.password != form.password_confirmation {
        v.add(
            "password_confirmation",
            "ERR_CONFIRMATION",
            "doesn't match Password",
        );
    }
    if !v.is_empty() {
        let (csrf_token, set) = csrf(&state, &headers);
        return state.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_edit.html",
            json!({ "csrf": csrf_token, "token": form.reset_password_token, "errors": v.messages() }),
            set.into_iter().collect(),
        );
    }
    let hash = match state.passwords.hash(form.password).await {
        Err(busy) => return retry_later(&state, busy.retry_after),
        Ok(Ok(hash)) => hash,
        Ok(Err(e)) => return crate::error::ApiError::internal(e).into_response(),
    };
    let updated = async {
        let mut tx = state.ctx.db.begin().await?;
        let account_id: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1, reset_token_hash = NULL, reset_sent_at = NULL \
             WHERE reset_token_hash = $2 AND reset_sent_at > now() - interval '2 hours' RETURNING account_id",
        )
        .bind(&hash)
        .bind(tokens::digest(&form.reset_password_token))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(account_id) = account_id {
            // A new password signs out every browser and app.
            sqlx::query("DELETE FROM web_sessions WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE oauth_access_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
            )
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if let Some(account) = account_id {
            state.grants.forget_account(account);
            // Streaming connections of the account close at once.
            stampede_social::stream::publish(
                &state.ctx.cache,
                stampede_social::stream::CONTROL_CHANNEL,
                &stampede_social::stream::Control::Disconnect { account },
            )
            .await;
        }
        Ok::<_, sqlx::Error>(account_id.is_some())
    }
    .await;
    match updated {
        Ok(true) => state.page(
            StatusCode::OK,
            "notice.html",
            json!({
                "heading": "Your password has been changed",
                "paragraphs": ["You were logged out everywhere. Log in with your new password."],
                "links": [{ "href": "/auth/sign_in", "text": "Log in" }],
            }),
            Vec::new(),
        ),
        Ok(false) => invalid_reset(&state),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
