//! Delivering one event: to every route that selects it, each with de-duplication, retries
//! with jitter and its outcome recorded in the store.

use super::*;

/// How a delivery ended, before it becomes a [`Delivery`].
struct Outcome {
    status: DeliveryStatus,
    attempts: u32,
    status_code: Option<u16>,
    error: Option<String>,
    started_at_ms: i64,
    finished_at_ms: i64,
}

/// One failed HTTP attempt.
#[derive(Debug)]
pub(super) struct AttemptError {
    pub(super) status: Option<u16>,
    pub(super) retryable: bool,
    pub(super) retry_after: Option<Duration>,
    /// Already scrubbed.
    pub(super) message: String,
}

impl Inner {
    pub(super) async fn notify(self: Arc<Self>, event: Event) -> Vec<Delivery> {
        let selected: Vec<usize> = (0..self.routes.len())
            .filter(|&i| self.routes[i].selects(event.kind))
            .collect();
        if selected.is_empty() {
            return Vec::new();
        }
        let id = new_event_id(event.at_ms);
        let key = dedup::key(&event);
        let claims: Vec<Option<dedup::Claim>> = {
            let mut d = self.dedup.lock().unwrap_or_else(|e| e.into_inner());
            selected
                .iter()
                .map(|&i| d.claim(i, key, event.at_ms))
                .collect()
        };
        let deliveries = selected.iter().zip(claims).map(|(&i, claim)| {
            let (id, event) = (&id, &event);
            let this = &self;
            async move {
                let route = &this.routes[i];
                let Some(claim) = claim else {
                    tracing::debug!(
                        route = %route.name,
                        event = %event.kind,
                        event_id = %id,
                        "notification suppressed: an identical event was sent within the window"
                    );
                    let now = now_ms();
                    let outcome = Outcome {
                        status: DeliveryStatus::Suppressed,
                        attempts: 0,
                        status_code: None,
                        error: None,
                        started_at_ms: now,
                        finished_at_ms: now,
                    };
                    return this.delivery(route, id, event, outcome);
                };
                let delivery = this.deliver(route, id, event).await;
                if delivery.status == DeliveryStatus::Failed {
                    this.dedup
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .release(claim);
                }
                if let Some(store) = &this.store
                    && let Err(e) = store.record_delivery(&delivery).await
                {
                    tracing::warn!(
                        route = %route.name,
                        event_id = %id,
                        error = %error_chain(&e),
                        "cannot record a notification delivery in the store"
                    );
                }
                delivery
            }
        });
        futures::future::join_all(deliveries).await
    }

    fn delivery(&self, route: &Route, id: &str, event: &Event, outcome: Outcome) -> Delivery {
        let Outcome {
            status,
            attempts,
            status_code,
            error,
            started_at_ms,
            finished_at_ms,
        } = outcome;
        Delivery {
            event_id: id.to_string(),
            route: route.name.clone(),
            event: event.kind,
            job: event.job.as_deref().map(|s| self.scrubber.text(s)),
            cluster: event.cluster.as_deref().map(|s| self.scrubber.text(s)),
            revision: event.revision.as_deref().map(|s| self.scrubber.text(s)),
            url: route.shown_url.clone(),
            status,
            attempts,
            status_code,
            error,
            event_at_ms: event.at_ms,
            started_at_ms,
            finished_at_ms,
        }
    }

    /// Sends `event` to `route` with retries.
    async fn deliver(&self, route: &Route, id: &str, event: &Event) -> Delivery {
        let started = now_ms();
        let body = match &route.target {
            Target::Http { .. } => {
                Body::Http(payload::render(route.format, id, event, &self.scrubber))
            }
            Target::Email(mailer) => {
                match email::message(id, event, &self.scrubber, &mailer.from, &mailer.to) {
                    Ok(message) => Body::Email(Box::new(message)),
                    Err(e) => Body::Invalid(self.scrubber.text(&error_chain(&e))),
                }
            }
        };
        let attempts = AtomicU32::new(0);
        let max_backoff = self.options.max_backoff;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.options.min_backoff)
            .with_max_delay(max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.options.max_attempts.saturating_sub(1) as usize);
        let result = (|| async {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let r = self.attempt(route, id, &body).await;
            if let Err(e) = &r {
                tracing::debug!(
                    route = %route.name,
                    event_id = %id,
                    attempt = n,
                    retry = e.retryable,
                    error = %e.message,
                    "notification attempt failed"
                );
            }
            r
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &AttemptError| e.retryable)
        .adjust(
            move |e: &AttemptError, delay: Option<Duration>| match (delay, e.retry_after) {
                (Some(d), Some(after)) => Some(d.max(after.min(max_backoff))),
                (delay, _) => delay,
            },
        )
        .await;
        let attempts = attempts.load(Ordering::SeqCst);
        let finished = now_ms();
        let outcome = |status, status_code, error| Outcome {
            status,
            attempts,
            status_code,
            error,
            started_at_ms: started,
            finished_at_ms: finished,
        };
        match result {
            Ok(code) => {
                tracing::info!(
                    route = %route.name,
                    event = %event.kind,
                    event_id = %id,
                    url = %route.shown_url,
                    attempts,
                    status = code,
                    "notification delivered"
                );
                let outcome = outcome(DeliveryStatus::Delivered, Some(code), None);
                self.delivery(route, id, event, outcome)
            }
            Err(e) => {
                tracing::warn!(
                    route = %route.name,
                    event = %event.kind,
                    event_id = %id,
                    url = %route.shown_url,
                    attempts,
                    error = %e.message,
                    "notification not delivered"
                );
                let outcome = outcome(DeliveryStatus::Failed, e.status, Some(e.message));
                self.delivery(route, id, event, outcome)
            }
        }
    }

    /// One HTTP request or SMTP transaction; the status (or SMTP reply) code on success.
    async fn attempt(&self, route: &Route, id: &str, body: &Body) -> Result<u16, AttemptError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let (url, key, secret, body) = match (&route.target, body) {
            (Target::Http { url, key, secret }, Body::Http(body)) => (url, key, secret, body),
            (Target::Email(mailer), Body::Email(message)) => {
                return email::attempt(mailer, message, &self.scrubber).await;
            }
            (_, Body::Invalid(message)) => {
                return Err(AttemptError {
                    status: None,
                    retryable: false,
                    retry_after: None,
                    message: message.clone(),
                });
            }
            _ => unreachable!("a route's body is built for its target"),
        };
        let now = now_ms();
        let timestamp = now.div_euclid(1000);
        let (url, body) = im::signed(route.format, secret.as_deref(), url, body, now);
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(sign::HEADER_ID, id)
            .header(sign::HEADER_TIMESTAMP, timestamp.to_string());
        if let Some(key) = key {
            request = request.header(sign::HEADER_SIGNATURE, key.sign(id, timestamp, &body));
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) => {
                return Err(AttemptError {
                    status: None,
                    retryable: !e.is_builder(),
                    retry_after: None,
                    message: self.scrubber.text(&error_chain(&e.without_url())),
                });
            }
        };
        let status = response.status();
        if status.is_success() {
            return im::check_response(route.format, response, &self.scrubber).await;
        }
        let code = status.as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_prefix(response, MAX_ERROR_BODY).await;
        let mut message = format!("HTTP {status}");
        if status.is_redirection() {
            message.push_str(" (redirects are not followed; configure the final URL)");
        }
        let body = body.trim();
        if !body.is_empty() {
            message.push_str(": ");
            message.push_str(&crate::text::truncate(body, MAX_ERROR_BODY));
        }
        Err(AttemptError {
            status: Some(code),
            retryable: code == 429 || status.is_server_error(),
            retry_after,
            message: self.scrubber.text(&message),
        })
    }
}

/// The first `max` bytes of a response body (lossy UTF-8); reading stops there.
pub(super) async fn read_prefix(mut response: reqwest::Response, max: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(max);
    String::from_utf8_lossy(&buf).into_owned()
}
