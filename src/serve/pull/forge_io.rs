//! A preview's traffic with the mirror and the forge: fetching the pull request, the comment and
//! the commit status.

use tracing::warn;

use super::PreviewError;
use super::merge::{Fetched, contains};
use super::{
    FETCH_ATTEMPTS, FETCH_RETRY_DELAY, Previews, PullEvent, PullKey, STATUS_CONTEXT, Target,
    comment::failure_comment, is_preview_comment, short,
};
use crate::forge::{self, CommitState, ForgeError};

impl Previews {
    /// Fetches the head and the branch; again (briefly) while the head ref lags the delivery.
    pub(super) async fn fetch(
        &self,
        key: PullKey,
        ev: &PullEvent,
    ) -> Result<Fetched, PreviewError> {
        let kind = key.forge.as_str();
        let n = key.number;
        let head_local = format!("refs/weir/previews/{kind}/{n}/head");
        let base_local = format!("refs/weir/previews/{kind}/{n}/base");
        let head_remote = key.forge.head_ref(n);
        let base_remote = format!("refs/heads/{}", self.shared.cfg.repo.branch);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mirror = self.mirror.clone();
            let (hr, hl, br, bl) = (
                head_remote.clone(),
                head_local.clone(),
                base_remote.clone(),
                base_local.clone(),
            );
            let wanted = ev.head_sha.clone();
            let (ids, has_wanted) = tokio::task::spawn_blocking(move || {
                let ids = mirror.fetch_refs(&[(&hr, &hl), (&br, &bl)])?;
                let has = contains(mirror.path(), &ids[0], &wanted);
                Ok::<_, PreviewError>((ids, has))
            })
            .await
            .map_err(|source| PreviewError::Task {
                what: "fetching the pull request",
                source,
            })??;
            if has_wanted || attempt >= FETCH_ATTEMPTS {
                if !has_wanted {
                    warn!(
                        forge = kind,
                        number = n,
                        "{head_remote} is at {} and does not contain the delivered head {}; previewing {}",
                        short(&ids[0]),
                        short(&ev.head_sha),
                        short(&ids[0])
                    );
                }
                return Ok(Fetched {
                    head: ids[0].clone(),
                    base: ids[1].clone(),
                });
            }
            tokio::time::sleep(FETCH_RETRY_DELAY).await;
        }
    }

    /// Updates weir's comment (the oldest one starting with the marker) or creates it.
    pub(super) async fn upsert(
        &self,
        target: &Target,
        key: PullKey,
        body: &str,
    ) -> Result<u64, ForgeError> {
        let mine = |b: &str| is_preview_comment(b);
        match target.forge.find_comment(key.number, &mine).await? {
            Some(c) if c.body == body => Ok(c.id),
            Some(c) => Ok(target
                .forge
                .update_comment(key.number, c.id, body)
                .await?
                .id),
            None => Ok(target.forge.create_comment(key.number, body).await?.id),
        }
    }

    pub(super) async fn set_status(
        &self,
        target: &Target,
        key: PullKey,
        sha: &str,
        state: CommitState,
        description: &str,
        target_url: Option<&str>,
    ) {
        if self.closed(key) || sha.is_empty() {
            return;
        }
        let description = self.scrubbed(description);
        let status = forge::Status {
            sha,
            state,
            context: STATUS_CONTEXT,
            description: &description,
            target_url,
        };
        if let Err(e) = target.forge.set_status(&status).await {
            warn!(
                forge = key.forge.as_str(),
                number = key.number,
                "setting the commit status: {}",
                self.scrubbed(&crate::text::error_chain(&e))
            );
        }
    }

    /// Tells the pull request that weir could not preview it: an `error` status and the comment.
    pub(super) async fn report_failure(
        &self,
        target: &Target,
        key: PullKey,
        head: &str,
        message: &str,
        brief: &str,
    ) -> Option<u64> {
        if self.closed(key) {
            return None;
        }
        let description = format!("weir could not plan this commit: {brief}");
        self.set_status(target, key, head, CommitState::Error, &description, None)
            .await;
        let body = self.scrubbed(&failure_comment(head, message));
        match self.upsert(target, key, &body).await {
            Ok(id) => Some(id),
            Err(e) => {
                warn!(
                    forge = key.forge.as_str(),
                    number = key.number,
                    "writing the preview comment: {}",
                    self.scrubbed(&crate::text::error_chain(&e))
                );
                None
            }
        }
    }
}
