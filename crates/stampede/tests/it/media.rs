//! Media: uploads through the API (Mastodon.py and plain HTTP), processing by the media
//! service, storage on local disk and in a real S3-protocol server, bad inputs, cleanup, and
//! media on statuses from another server.

use std::io::Cursor;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app, spawn_s3, unique};

use crate::social::{User, seed_user};

/// A photo-like JPEG: gradients and noise, so it compresses like a photo.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 32;
        image::Rgb([
            ((x * 255 / width.max(1)) as u8).wrapping_add(noise as u8),
            (y * 255 / height.max(1)) as u8,
            (((x + y) % 256) as u8).wrapping_add(noise as u8),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// A PNG with transparency.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, ((x + y) % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A PNG of noise: it does not compress, so it is large (3.2 MB at 900 × 900).
fn noisy_png(width: u32, height: u32) -> Vec<u8> {
    let mut state: u32 = 0x9E37_79B9;
    let image = image::RgbaImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgba(state.to_le_bytes())
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A PNG whose header claims 100,000 × 100,000 pixels: a decompression bomb.
fn bomb() -> Vec<u8> {
    let mut png = png(1, 1);
    // IHDR's width and height follow the 8-byte signature, the chunk length and type.
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    // The chunk's CRC-32 covers its type and data.
    let crc = png[12..29].iter().fold(!0u32, |crc, byte| {
        (0..8).fold(crc ^ u32::from(*byte), |c, _| {
            if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            }
        })
    });
    png[29..33].copy_from_slice(&(!crc).to_be_bytes());
    png
}

/// A one-second video made by ffmpeg.
fn video() -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("{}.webm", unique("stampede-video-")));
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=320x240:rate=10",
            "-c:v",
            "libvpx",
            "-y",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (deploy/local/test.sh installs it)");
    assert!(status.success());
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

/// A multipart body of `fields` (name, file name for files, bytes) and its content type.
fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = unique("boundary");
    let mut body = Vec::new();
    for (name, file, bytes) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends a multipart request; the status and JSON body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &User,
    fields: &[(&str, Option<&str>, &[u8])],
) -> (u16, Value) {
    let (content_type, body) = multipart(fields);
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&user.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn upload(app: &TestApp, user: &User, bytes: &[u8]) -> (u16, Value) {
    send(
        app,
        Method::POST,
        "/api/v2/media",
        user,
        &[("file", Some("upload.bin"), bytes)],
    )
    .await
}

/// The path part of a file URL of `app` (`/system/…`).
pub fn path_of(url: &Value) -> String {
    let url = url::Url::parse(url.as_str().expect("a URL")).unwrap();
    url.path().to_string()
}

pub async fn get_bytes(app: &TestApp, path: &str) -> (u16, String, Vec<u8>) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn worker_place(app: &TestApp) -> stampede_social::media::Place<'_> {
    stampede_social::media::Place {
        metrics: &app.ctx.metrics,
        name: "worker",
    }
}

async fn wait_ready(app: &TestApp, user: &User, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = crate::social::get(app, &format!("/api/v1/media/{id}"), user).await;
        if answer.status == 200 {
            return answer.body;
        }
        assert_eq!(answer.status, 206, "{:?}", answer.body);
        assert!(std::time::Instant::now() < deadline, "never processed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn mastodon_py_uploads_attaches_and_sees_media_on_local_disk() {
    // Mastodon.py finds the streaming server and fetches files at the server's own URL.
    let port = crate::process::free_port();
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        streaming: true,
        env: vec![("WEB_DOMAIN".into(), format!("127.0.0.1:{port}"))],
        port: Some(port),
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let dir = std::env::temp_dir().join(unique("stampede-media-files-"));
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        ("photo.jpg", jpeg(1200, 900)),
        ("avatar.png", png(300, 200)),
        ("clip.webm", video()),
        ("notes.txt", b"just some text, not a picture".to_vec()),
        ("bomb.png", bomb()),
        ("truncated.jpg", jpeg(640, 480)[..3000].to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let config = json!({
        "alice": alice.token, "bob": bob.token, "dir": dir.display().to_string(),
    })
    .to_string();
    let base = format!("http://{}", app.addr);
    let out = tokio::task::spawn_blocking(move || {
        crate::compat::run_script(crate::compat::MEDIA_SCRIPT, &[&base, &config])
    })
    .await
    .unwrap();
    assert!(out.contains("\"ok\": true"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
}

#[tokio::test]
async fn uploads_are_206_until_processed_and_bad_ones_say_why() {
    // No media worker: uploads too big to process in the request wait in the queue.
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;

    // Over 2 MiB: queued, 202, then 206 until the media service has made the variants.
    let big = noisy_png(900, 900);
    assert!(big.len() > 2 * 1024 * 1024, "{}", big.len());
    let (status, queued) = upload(&app, &alice, &big).await;
    assert_eq!(status, 202, "{queued:?}");
    assert_eq!(queued["url"], Value::Null);
    let id = queued["id"].as_str().unwrap().to_string();
    let polled = crate::social::get(&app, &format!("/api/v1/media/{id}"), &alice).await;
    assert_eq!(polled.status, 206, "{:?}", polled.body);
    // Attaching it now is refused, as Mastodon refuses it.
    let early = crate::social::post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({ "status": "too soon", "media_ids": [id] }),
    )
    .await;
    assert_eq!(early.status, 422, "{:?}", early.body);
    assert!(early.body["error"].as_str().unwrap().contains("processing"));
    // Only the uploader sees it.
    let other = crate::social::get(&app, &format!("/api/v1/media/{id}"), &bob).await;
    assert_eq!(other.status, 404);

    // The media worker makes the variants.
    let worker = stampede_social::media::MediaWorker {
        db: app.ctx.jobs.clone(),
        storage: app.ctx.storage.clone(),
        client: stampede_social::remote::client(&app.ctx.config).unwrap(),
        limits: stampede_social::media::limits(&app.ctx.config),
        metrics: app.ctx.metrics.clone(),
    };
    let outcome = stampede_social::media::process(
        &worker.db,
        &worker.storage,
        &worker.limits,
        id.parse().unwrap(),
        worker_place(&app),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, stampede_social::media::Outcome::Ready(_)));
    let ready = wait_ready(&app, &alice, &id).await;
    assert_eq!(ready["type"], "image");
    assert_eq!(ready["meta"]["original"]["width"], 900);
    let (status, content_type, file) = get_bytes(&app, &path_of(&ready["url"])).await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    assert!(file.starts_with(b"\x89PNG"));
    let (status, _, _) = get_bytes(&app, &path_of(&ready["preview_url"])).await;
    assert_eq!(status, 200);

    // Bob cannot attach, change or delete Alice's upload.
    let stolen = crate::social::post(
        &app,
        "/api/v1/statuses",
        &bob,
        json!({ "status": "mine now", "media_ids": [id] }),
    )
    .await;
    assert_eq!(stolen.status, 422, "{:?}", stolen.body);
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/v1/media/{id}"),
        &bob,
        &[("description", None, b"hijacked")],
    )
    .await;
    assert_eq!(status, 404);
    let deleted = crate::social::call(
        &app,
        Method::DELETE,
        &format!("/api/v1/media/{id}"),
        Some(&bob.token),
        None,
    )
    .await;
    assert_eq!(deleted.status, 404);

    // Alice describes it, attaches it, and can no longer delete it.
    let (status, described) = send(
        &app,
        Method::PUT,
        &format!("/api/v1/media/{id}"),
        &alice,
        &[
            ("description", None, b"a patterned square"),
            ("focus", None, b"0.25,-0.5"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{described:?}");
    assert_eq!(described["description"], "a patterned square");
    assert_eq!(described["meta"]["focus"], json!({ "x": 0.25, "y": -0.5 }));
    let posted = crate::social::post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({ "status": "", "media_ids": [id] }),
    )
    .await;
    assert_eq!(posted.status, 200, "{:?}", posted.body);
    assert_eq!(posted.body["media_attachments"][0]["id"], id.as_str());
    // An edit may change the description of what it shows.
    let status_id = posted.body["id"].as_str().unwrap().to_string();
    let edited = crate::social::call(
        &app,
        Method::PUT,
        &format!("/api/v1/statuses/{status_id}"),
        Some(&alice.token),
        Some(json!({
            "status": "described",
            "media_ids": [id],
            "media_attributes": [{ "id": id, "description": "a noisy square" }],
        })),
    )
    .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    assert_eq!(
        edited.body["media_attachments"][0]["description"],
        "a noisy square"
    );
    let in_use = crate::social::call(
        &app,
        Method::DELETE,
        &format!("/api/v1/media/{id}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(in_use.status, 422, "{:?}", in_use.body);

    // A corrupt file that goes through the queue fails there, and says why.
    let mut corrupt = big.clone();
    corrupt.truncate(big.len() * 3 / 4);
    let (status, queued) = upload(&app, &alice, &corrupt).await;
    assert_eq!(status, 202, "{queued:?}");
    let broken = queued["id"].as_str().unwrap().to_string();
    let outcome = stampede_social::media::process(
        &worker.db,
        &worker.storage,
        &worker.limits,
        broken.parse().unwrap(),
        worker_place(&app),
    )
    .await
    .unwrap();
    assert!(matches!(
        outcome,
        stampede_social::media::Outcome::Failed(_)
    ));
    let failed = crate::social::get(&app, &format!("/api/v1/media/{broken}"), &alice).await;
    assert_eq!(failed.status, 422, "{:?}", failed.body);
    assert!(!failed.body["error"].as_str().unwrap().is_empty());

    // Small bad files are refused in the request, each with its reason; nothing is kept.
    for (bytes, expect) in [
        (bomb(), "pixels"),
        (b"%PDF-1.7 not an image".to_vec(), "not"),
        (Vec::new(), "blank"),
    ] {
        let fields: Vec<(&str, Option<&str>, &[u8])> = if bytes.is_empty() {
            vec![("description", None, b"no file")]
        } else {
            vec![("file", Some("x"), &bytes)]
        };
        let (status, body) = send(&app, Method::POST, "/api/v2/media", &alice, &fields).await;
        assert_eq!(status, 422, "{body:?}");
        let error = body["error"].as_str().unwrap().to_lowercase();
        assert!(error.contains(expect), "{expect}: {error}");
    }
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM media_attachments WHERE account_id = $1 AND state <> 'failed'",
    )
    .bind(alice.id.parse::<i64>().unwrap())
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(kept, 1, "only the attached upload is kept");

    // An upload never attached is cleaned up after MEDIA_UNATTACHED_HOURS, files and all.
    let (status, orphan) = upload(&app, &alice, &jpeg(64, 48)).await;
    assert_eq!(status, 200, "{orphan:?}");
    let orphan_path = path_of(&orphan["url"]);
    sqlx::query(
        "UPDATE media_attachments SET updated_at = now() - interval '2 days' WHERE id = $1",
    )
    .bind(orphan["id"].as_str().unwrap().parse::<i64>().unwrap())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let removed = stampede_social::media::cleanup(&app.ctx.jobs, &app.ctx.storage, 24, None)
        .await
        .unwrap();
    assert!(removed.unattached_removed >= 1, "{removed:?}");
    assert!(removed.files_removed >= 2, "{removed:?}");
    assert_eq!(get_bytes(&app, &orphan_path).await.0, 404);
    // The attached one stays.
    assert_eq!(get_bytes(&app, &path_of(&ready["url"])).await.0, 200);

    // An upload left processing (its web process died before it was done) is queued again.
    let (status, stuck) = upload(&app, &alice, &big).await;
    assert_eq!(status, 202, "{stuck:?}");
    sqlx::query(
        "UPDATE media_attachments SET updated_at = now() - interval '20 minutes' WHERE id = $1",
    )
    .bind(stuck["id"].as_str().unwrap().parse::<i64>().unwrap())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let swept = stampede_social::media::cleanup(&app.ctx.jobs, &app.ctx.storage, 24, None)
        .await
        .unwrap();
    assert_eq!(swept.requeued, 1, "{swept:?}");
    app.stop().await;
}

#[tokio::test]
async fn without_ffmpeg_video_is_refused_at_once_and_images_still_work() {
    let app = spawn_app(AppOptions {
        env: vec![
            ("FFMPEG_BINARY".into(), "/nonexistent/ffmpeg".into()),
            ("FFPROBE_BINARY".into(), "/nonexistent/ffprobe".into()),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let started = std::time::Instant::now();
    let (status, body) = upload(&app, &alice, &video()).await;
    assert_eq!(status, 422, "{body:?}");
    assert!(
        body["error"].as_str().unwrap().contains("ffmpeg"),
        "{body:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let (status, body) = upload(&app, &alice, &jpeg(320, 240)).await;
    assert_eq!(status, 200, "{body:?}");
    let instance = crate::social::get(&app, "/api/v2/instance", &alice).await;
    let types = &instance.body["configuration"]["media_attachments"]["supported_mime_types"];
    assert!(types.as_array().unwrap().contains(&json!("image/jpeg")));
    assert!(
        !types.as_array().unwrap().contains(&json!("video/mp4")),
        "{types}"
    );
    app.stop().await;
}

#[tokio::test]
async fn media_lives_in_a_real_s3_bucket() {
    let server = spawn_s3().await.unwrap();
    let bucket = unique("media-");
    let app = spawn_app(AppOptions {
        amqp: true,
        workers: true,
        env: vec![
            ("S3_ENABLED".into(), "true".into()),
            ("S3_BUCKET".into(), bucket.clone()),
            ("S3_ENDPOINT".into(), server.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), server.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), server.secret_key.clone()),
            ("S3_ALIAS_HOST".into(), "files.stampede.test".into()),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let stampede_storage::Storage::S3(s3) = &app.ctx.storage else {
        panic!("S3 storage expected");
    };
    s3.client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    // Large enough to go through the media service.
    let (status, queued) = upload(&app, &alice, &noisy_png(900, 900)).await;
    assert_eq!(status, 202, "{queued:?}");
    let id = queued["id"].as_str().unwrap().to_string();
    let ready = wait_ready(&app, &alice, &id).await;
    let url = ready["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://files.stampede.test/media_attachments/"),
        "{url}"
    );
    let key = url.trim_start_matches("https://files.stampede.test/");
    let object = s3
        .client()
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_type(), Some("image/png"));
    assert_eq!(
        object.cache_control(),
        Some("public, max-age=31536000, immutable")
    );
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert!(bytes.starts_with(b"\x89PNG"));
    // The uploaded original is gone once processed (the garbage sweep removes it).
    stampede_social::media::cleanup(&app.ctx.jobs, &app.ctx.storage, 24, None)
        .await
        .unwrap();
    let listed = s3
        .client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 2, "the original and the preview: {keys:?}");
    app.stop().await;
}

#[tokio::test]
async fn media_of_a_remote_status_is_linked_and_cached() {
    let federating = || AppOptions {
        workers: true,
        federating: true,
        ..AppOptions::default()
    };
    let (a, b) = tokio::join!(spawn_app(federating()), spawn_app(federating()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let domain_a = format!("127.0.0.1:{}", a.addr.port());
    let alice = seed_user(&a, "alice", false).await;
    let bob = seed_user(&b, "bob", false).await;
    let alice_on_b = crate::federation::resolve(&b, &bob, &format!("alice@{domain_a}")).await;
    let followed = crate::social::post(
        &b,
        &format!("/api/v1/accounts/{alice_on_b}/follow"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(followed.status, 200, "{:?}", followed.body);
    crate::federation::until(
        &b,
        &bob,
        &format!("/api/v1/accounts/relationships?id[]={alice_on_b}"),
        "the Accept arrives",
        |r| r[0]["following"] == true,
    )
    .await;

    let (status, uploaded) = send(
        &a,
        Method::POST,
        "/api/v2/media",
        &alice,
        &[
            ("file", Some("p.jpg"), &jpeg(800, 600)),
            ("description", None, b"a test pattern"),
            ("focus", None, b"0.5,0.5"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{uploaded:?}");
    let posted = crate::social::post(
        &a,
        "/api/v1/statuses",
        &alice,
        json!({ "status": "with a picture", "media_ids": [uploaded["id"]] }),
    )
    .await;
    assert_eq!(posted.status, 200, "{:?}", posted.body);

    // On Bob's server: the attachment names the original, and is cached there.
    let home = crate::federation::until(
        &b,
        &bob,
        "/api/v1/timelines/home",
        "the post arrives with its picture, cached",
        |h| {
            h[0]["media_attachments"][0]["url"]
                .as_str()
                .is_some_and(|u| u.contains("/system/"))
        },
    )
    .await;
    let media = &home[0]["media_attachments"][0];
    assert_eq!(media["type"], "image");
    assert_eq!(media["remote_url"], uploaded["url"]);
    assert_eq!(media["description"], "a test pattern");
    assert_eq!(media["meta"]["focus"], json!({ "x": 0.5, "y": 0.5 }));
    assert_eq!(media["meta"]["original"]["width"], 800);
    let (status, content_type, _) = get_bytes(&b, &path_of(&media["url"])).await;
    assert_eq!((status, content_type.as_str()), (200, "image/jpeg"));

    // Dropping the cache (`stampede admin media remove`) links the remote file again, through
    // the media proxy, which fetches it anew when asked.
    sqlx::query("UPDATE media_attachments SET updated_at = now() - interval '9 days'")
        .execute(&b.ctx.db)
        .await
        .unwrap();
    let removed = stampede_social::media::cleanup(&b.ctx.jobs, &b.ctx.storage, 24, Some(7))
        .await
        .unwrap();
    assert_eq!(removed.uncached, 1, "{removed:?}");
    let status = crate::social::get(
        &b,
        &format!("/api/v1/statuses/{}", home[0]["id"].as_str().unwrap()),
        &bob,
    )
    .await;
    let proxied = status.body["media_attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(proxied.contains("/media_proxy/"), "{proxied}");
    let response = b
        .client
        .get(b.url(&path_of(&json!(proxied))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "the proxy redirects to the fresh copy"
    );
    a.stop().await;
    b.stop().await;
}
