//! # The manual: why `twofactor` works the way it does
//!
//! This module holds no code. It explains the decisions behind the defaults, so that a host
//! developer or a security reviewer can check them instead of trusting them.
//!
//! ## Layers
//!
//! ```text
//!  host application (axum, actix, CLI, ERP)
//!        │ checks the password, then calls ↓
//!  ┌──────────────────────────────────────────────────────────────────────┐
//!  │ service    TwoFactor<Store, Mailer, Policy, Clock, Audit>  (async)   │
//!  │            load → one pure transition → compare-and-swap save        │
//!  │            → notices to the Mailer, events to the AuditSink          │
//!  │ seal       SealedStore: a UserStore wrapper (encryption at rest)     │
//!  │ cookie     trusted-device cookie names and headers                   │
//!  │ store      UserStore trait; memory, SQLite, PostgreSQL adapters      │
//!  ├──────────────────────────────────────────── sans-IO below ───────────┤
//!  │ account    TwoFactorRecord + pure transitions                        │
//!  │ policy     EnforcementPolicy: Off / Optional / Required / Exempt     │
//!  │ audit      AuditEvent, AuditKind, the AuditSink trait                │
//!  │ mail       Notice, the Mailer trait                                  │
//!  │ provision  otpauth:// URIs, QR codes                                 │
//!  │ vocabulary UserId, DeviceId, LoginContext, FactorKind, secret slots  │
//!  │ otp        RFC 4226 / RFC 6238, Secret                               │
//!  │ clock      the Clock trait                                           │
//!  └──────────────────────────────────────────────────────────────────────┘
//!        ↑ UserStore (memory, SQLite, PostgreSQL, yours)   ↑ Mailer (yours)
//! ```
//!
//! Each module imports only the modules listed below it (`tests/layers.rs` checks it), so
//! the words every layer shares live in [`vocabulary`](crate::vocabulary), at the bottom,
//! and no two modules import each other. [`testing`](crate::testing) (test doubles) sits on
//! top of everything and is for tests only. The traits at the edges (`Mailer`, `AuditSink`)
//! are declared below the domain, which returns the notices and audit kinds to deliver; only
//! the service calls them.
//!
//! Everything below the service is synchronous and does no I/O: it never reads a clock or the
//! operating system's random number generator except through what is passed in. That makes
//! every rule testable at exact instants (RFC vectors, expiry edges, grace periods) and lets a
//! host run the core inside any runtime or none.
//!
//! ## Why SHA-1, 6 digits and 30 seconds by default
//!
//! Authenticator apps are the other half of the protocol, and several of them (Google
//! Authenticator among them, for years) ignore the `algorithm`, `digits` and `period`
//! parameters of the provisioning URI and compute SHA-1, 6 digits, 30 seconds regardless. A
//! user whose app silently does that can never log in. HMAC-SHA-1 is still sound for this use:
//! the collision attacks on SHA-1 do not give an attacker HMAC outputs without the key.
//! SHA-256 and SHA-512 are available for deployments that control the authenticator.
//!
//! ## The skew window
//!
//! A code is checked against the current time step and [`otp::DEFAULT_SKEW`](crate::otp::DEFAULT_SKEW)
//! (one) step either side: phones drift, and people take seconds to type. Every extra step
//! multiplies an online guesser's odds, so the window is capped at
//! [`otp::MAX_SKEW`](crate::otp::MAX_SKEW). Verification computes every step in the window,
//! compares each in constant time with `subtle` and never stops at the first match, so the time
//! it takes does not reveal which step matched. It keys the HMAC once per call and allocates
//! nothing.
//!
//! ## Several authenticators
//!
//! A user may hold several authenticators (a phone, a spare phone, a password manager):
//! [`TwoFactor::authenticators`](crate::TwoFactor::authenticators) lists them,
//! [`rename_authenticator`](crate::TwoFactor::rename_authenticator),
//! [`start_adding_authenticator`](crate::TwoFactor::start_adding_authenticator) /
//! [`finish_adding_authenticator`](crate::TwoFactor::finish_adding_authenticator),
//! [`start_replacing_authenticator`](crate::TwoFactor::start_replacing_authenticator) and
//! [`remove_authenticator`](crate::TwoFactor::remove_authenticator) manage them. Each has a
//! random id (13 characters, `[a-z2-7]`), a label the user chose (trimmed, 1 to 64
//! characters, no control characters, unique per user without regard to case), its own TOTP
//! parameters and secret, its own replay step and clock offset, a creation and a last-used
//! time.
//!
//! - **Adding** one needs a fresh password check *and* a second factor (a fresh proof from
//!   the session, a code from an existing authenticator, or a recovery code): with the password
//!   alone, someone could plant an authenticator of their own beside the user's. The new one
//!   is confirmed with a code from *it*, and then appended: the others, the recovery codes and
//!   the trusted devices are not touched. `finish_enrollment` never confirms an addition (it
//!   would replace), and an enrollment that finds an authenticator already there is refused.
//! - **Removing** one needs the same; the others are not touched. Removing the last one is
//!   turning 2FA off, with its rules (refused where the policy requires 2FA).
//! - **Replacing** one (a new phone) keeps its label and place, gives it a new id and a fresh
//!   clock offset, and, as a rotation always did, renews the recovery codes and forgets the
//!   trusted devices. [`start_rotation`](crate::TwoFactor::start_rotation) replaces the
//!   authenticator of a user who has one, and asks which
//!   ([`Error::AuthenticatorNotNamed`](crate::Error::AuthenticatorNotNamed)) otherwise.
//! - An administrator's reset removes them all.
//!
//! **Every authenticator multiplies a guesser's chance.** A login code is checked against
//! every TOTP authenticator of the user: with `k` authenticators and a skew of `s` steps,
//! one guess is compared with up to `k × (2s + 1)` codes (plus, for an authenticator with a
//! learned clock offset, its second window: see [clock drift](#clock-drift)). At the defaults
//! (±1 step, 6 digits) that is `3k` in a million per guess; with the default limit of 5
//! authenticators ([`Settings::DEFAULT_MAX_AUTHENTICATORS`](crate::account::Settings::DEFAULT_MAX_AUTHENTICATORS)),
//! 15 in a million, and with the most a deployment may allow (10,
//! [`Settings::MAX_MAX_AUTHENTICATORS`](crate::account::Settings::MAX_MAX_AUTHENTICATORS)),
//! 30 in a million. The throttle counts a *submission* once, whatever the number of
//! authenticators tried, so at 5 checks an hour the expected time to guess a code with five
//! authenticators is still about 13,000 hours (1.5 years) of uninterrupted guessing, each
//! failure audited and, by default, mailed to the user. A host that lets the user pick the
//! authenticator on the second step passes its id
//! ([`finish_login_from`](crate::TwoFactor::finish_login_from)): only that one is tried.
//!
//! **No early exit.** The check computes every step of every authenticator's window, combines
//! the results with `subtle` choices, and branches only on the combined verdict, so the time a
//! login takes does not depend on which authenticator matched, or on whether one did
//! (`benches/dudect.rs` times the first against the last of five). It depends on the number of
//! authenticators and on their windows, which are not secret. The first authenticator with a
//! fresh match is recorded ([`LoginGranted::authenticator`](crate::LoginGranted::authenticator),
//! the `otp` method of the assurance claims of the grant and of its proof, the audit event
//! `AuthenticatorUsed`), and its step only is marked used: replay protection is
//! per authenticator, so a code is accepted once per step *of each authenticator* (two
//! authenticators show the same code about once in a million).
//!
//! **Old rows.** A record written before several authenticators existed (formats 1 to 4)
//! holds one factor: it loads as one authenticator labelled "Authenticator app", created when
//! the factor was confirmed, with an id derived from that time, so every load of a row that is
//! never saved again gives the same id (a host may keep it in a form between two requests).
//! The next save writes it in the current format (6) with that id.
//!
//! ## Security keys (WebAuthn)
//!
//! With the `webauthn` feature, a user may register **security keys** beside (or instead of)
//! TOTP apps: [`TwoFactor::start_security_key_registration`](crate::TwoFactor::start_security_key_registration)
//! / [`finish_security_key_registration`](crate::TwoFactor::finish_security_key_registration),
//! [`start_security_key_login`](crate::TwoFactor::start_security_key_login) /
//! [`finish_security_key_login`](crate::TwoFactor::finish_security_key_login) at the second
//! step, [`start_security_key_step_up`](crate::TwoFactor::start_security_key_step_up) /
//! [`finish_security_key_step_up`](crate::TwoFactor::finish_security_key_step_up) before a
//! sensitive action. Each start returns the JSON options for `navigator.credentials.create`
//! or `.get`; each finish takes the browser's JSON answer. Configure the relying party once
//! ([`RelyingParty`](crate::account::RelyingParty): its id, the origin, a name) with
//! `Settings::builder().security_keys(..)`. A key is an authenticator like a TOTP app: named,
//! listed, renamed, removed (the last one is turning 2FA off), revoked by an administrator's
//! reset. The first key of a user with no authenticator turns 2FA on and hands out recovery
//! codes; another needs a fresh password check and a second factor, as adding any
//! authenticator does.
//!
//! **Every WebAuthn check is webauthn-rs's** (kanidm's, 0.5): the challenge, the origin, the
//! relying-party id hash, the signature, user presence, the counter. We never parse or verify
//! WebAuthn data ourselves; this crate keeps what webauthn-rs leaves to its caller.
//!
//! **Second factor, not passwordless: the `securitykey_*` ceremonies.** webauthn-rs offers
//! two paths. `passkey_*` *requires* user verification (a PIN or a fingerprint on the key) and
//! is meant to stand alone, replacing the password. `securitykey_*` asks for user presence
//! (a touch), prefers verification without requiring it, and accepts any FIDO2 or U2F key the
//! user already owns: it is the second factor after a password, which is what this crate is
//! about. We use `securitykey_*`. A host that later wants **passwordless** login needs more
//! than a flag: discoverable credentials (resident keys) registered with `passkey_*` or
//! `attested_passkey_*`, a stable user handle to find the account from the credential, a
//! login that starts without a username, and recovery that does not rest on the password.
//! Keys registered here would have to be registered again there; the record format keeps
//! security keys as their own kind so a passkey kind can be added beside them.
//!
//! **The ceremony state stays on the server.** webauthn-rs's state between start and finish
//! (the challenge and what it allows) must not reach the client: a client that could edit it
//! could replay an old answer or widen what is accepted. webauthn-rs therefore serialises it
//! only under its `danger-allow-state-serialisation` feature, which this crate turns on to
//! keep it **in the user's record**, never in a cookie, a form field or the host's session:
//! at most one registration and one authentication per user, each expiring
//! ([`RelyingParty::ceremony_ttl`](crate::account::RelyingParty::ceremony_ttl), 5 minutes by
//! default, never past the login ticket's deadline), used once (removed by the save that
//! accepts it), saved with the record's compare-and-swap so it works across app servers. A
//! login ceremony is bound to its login ticket, a step-up ceremony to the user; neither
//! finishes the other. An administrator's reset, and turning 2FA off, drop them.
//!
//! **Bad answers save nothing.** A malformed or replayed answer, another user's key, a key
//! removed since the ceremony started, an expired or used ceremony, another origin or
//! relying-party id: a typed [`Error::SecurityKey`](crate::Error::SecurityKey) with its
//! [`SecurityKeyFailure`](crate::vocabulary::SecurityKeyFailure), an audit event
//! (`SecurityKeyRefused`), and no write. A key's answer cannot be guessed (it is a signature
//! over a fresh challenge by a private key the server never sees), so refusals are not
//! counted by the code-check throttle, and a user with a key may still use it while codes are
//! throttled, as a remembered device may: someone who burns a user's code checks with their
//! password does not lock the key out. Starting a ceremony does write (the state), once per
//! request, and needs what the call needs (a usable login ticket, a password check).
//!
//! **Counters and cloned keys.** A key counts its signatures; webauthn-rs refuses an answer
//! whose counter is not above the stored one (unless both are 0), and we audit that as
//! `SecurityKeyPossiblyCloned` (someone else's copy of the key signed in between): the answer
//! is refused and nothing is saved; the user or an administrator removes the key. After
//! every accepted answer the stored credential is updated as webauthn-rs advises (counter,
//! backup state). **Synced passkeys** (a platform authenticator that syncs its keys through
//! a cloud account) report a counter of 0 forever: nothing can be learned from it, so a copy
//! of such a credential is not detected. That is the trade-off of synced credentials; a
//! deployment that must detect clones asks for hardware keys (attestation, not offered here
//! yet).
//!
//! **One credential, one registration.** A credential id already registered, to this user or
//! to another, is refused (WebAuthn § 7.1, step 22). The other users are asked of the store
//! through [`SecurityKeyIndex`](crate::store::SecurityKeyIndex): the stores shipped here walk
//! every record (a host with many users implements the look-up with an index). The look-up
//! runs before the registration's save and is not atomic with it: two users finishing a
//! registration *of the same credential* at the same instant could both pass. A genuine
//! authenticator never makes one credential for two registrations, so this takes a cloned or
//! forged authenticator, whose holder gains a second account tied to a key they already hold.
//!
//! **Phishing-resistant policy.** [`Requirement::PhishingResistant`](crate::Requirement::PhishingResistant)
//! (per role: [`PhishingResistantFor`](crate::policy::PhishingResistantFor)) asks a user with
//! a key for the key alone: TOTP and recovery codes are not offered, and are refused before
//! they are checked; no remembered device skips it. A user without a key yet logs in with a
//! code and is **escalated** ([`LoginGranted::needs_security_key`](crate::LoginGranted::needs_security_key)):
//! the host sends them to register one at once. A user with no 2FA at all is sent to forced
//! set-up (an authenticator app), and the login that set-up completes is escalated the same
//! way ([`Enrolled::needs_security_key`](crate::account::Enrolled::needs_security_key)); the
//! status an account page shows says so until a key is registered
//! ([`TwoFactorStatus::needs_security_key`](crate::account::TwoFactorStatus::needs_security_key),
//! from [`status_for`](crate::TwoFactor::status_for)). The axum module sends the user to the
//! account page, which asks for a key. That first registration rests on the code,
//! like any enrollment rests on what the user had before; from then on, codes do not log them
//! in. Hosts asking for a second factor before a sensitive action check that the session's
//! proof is of a key ([`SecondFactorProof::factor`](crate::account::SecondFactorProof::factor)
//! is [`FactorKind::SecurityKey`](crate::vocabulary::FactorKind::SecurityKey)).
//!
//! **What it protects against, and what not.** A key signs the origin the browser reports: a
//! phishing site on another domain gets an answer for *its* origin, which the server refuses,
//! and it cannot relay a TOTP-style code because there is none to type. An answer is bound to
//! one challenge, so a recorded answer does not replay. It does **not** protect against a
//! compromised browser or host (malware that drives the browser signs what it likes on the
//! real origin, and a stolen session cookie needs no key), against a malicious or compromised
//! server (it decides who is logged in), or against someone who holds the key and the
//! password. A user without a key still has the factors they had (TOTP, recovery codes):
//! those remain phishable unless the policy above takes them away.
//!
//! **In the browser.** The options are JSON with binary fields in base64url; the page turns
//! them into `ArrayBuffer`s for `navigator.credentials.create` / `.get` and sends the
//! credential back as JSON, base64url again. The [axum module](crate::axum) does it with a
//! small inline script ([`KEY_SCRIPT`](crate::axum::KEY_SCRIPT), no external assets): "Add a
//! security key" and "Remove" on the account page, "Use your security key" at the second step
//! and at step-up; the options come from a POST (with the CSRF token) and the answer goes back
//! as an ordinary form post. One browser quirk is handled there: webauthn-rs 0.5 asks for the
//! credProtect extension at level "user verification required" (not enforced) while asking
//! for user verification only as "preferred", a combination Chromium refuses as inconsistent
//! (`NotSupportedError`, kanidm/webauthn-rs#490). The script drops that unenforced hint when
//! user verification is not required, as a browser that does not know the extension would;
//! nothing the server checks depends on it. WebAuthn needs a secure context and a domain
//! name: serve over HTTPS, or on `http://localhost:PORT` in development (webauthn-rs refuses
//! `127.0.0.1` as an origin).
//!
//! **Assurance claims.** A key's grant and proof carry the RFC 8176 method `hwk`
//! ([`AuthMethod::HardwareKey`](crate::account::AuthMethod::HardwareKey)) or `swk`
//! ([`AuthMethod::SoftwareKey`](crate::account::AuthMethod::SoftwareKey)): `pwd hwk mfa` at
//! login, AAL2. `swk` is claimed for a key whose credential is **backup-eligible** (the
//! WebAuthn flag a synced passkey sets: its private key may be copied to the user's other
//! devices or a cloud keychain, "NOT sealed within a hardware cryptographic processor" in
//! webauthn-rs's words), `hwk` for one that is not (a USB or NFC key, a device-bound platform
//! key). The flag is the one webauthn-rs registered and checks at every answer (a key whose
//! answers disagree with it is refused), so the claim follows what the key says of itself; a
//! credential that cannot be read counts as `swk`, the weaker claim. Both reach AAL2, not
//! AAL3: SP 800-63B asks there for a hardware authenticator, which only an attestation of the
//! key's model would show, and the second-factor ceremonies here ask for none (a software key
//! that does not set the flag answers like a hardware one: `hwk` means "not declared
//! syncable", not "proven hardware"). NIST's supplement on syncable authenticators also keeps
//! synced passkeys at AAL2.
//! [`AuthMethod::is_phishing_resistant`](crate::account::AuthMethod::is_phishing_resistant)
//! tells a host that wants the phishing-resistant factor specifically.
//!
//! **Stored format.** A key is an authenticator whose `factor` is `{"security_key":
//! {"credential": ...}}`, webauthn-rs's credential as it serialises it (public key, id,
//! counter, backup state, attestation: nothing secret). Under
//! [`SealedStore`](crate::seal::SealedStore) it is covered by the record tag, so a key planted
//! in the table is refused like any other edit. The ceremonies ride in the record's
//! `key_ceremonies` field (format 6). A build without the feature reads records without keys
//! or ceremonies, and refuses one with them as a corrupt row (fail closed, never "no 2FA").
//!
//! **On the web.** The `axum` module's account page lists the authenticators (label, kind,
//! added, last used, the clock offset when one was learned), renames them, adds another (its
//! own QR code, confirmed with a code from the new one) and removes one. Adding and removing
//! need a password checked within `reauth_max_age` and a fresh second factor: a session that
//! holds no fresh proof (a remembered device, an old login) is sent to step-up first, and back.
//! The page also says how the current session was authenticated: the claims of its login
//! merged with those of every step-up since
//! (`twofactor::axum::TwoFactorWeb::current_claims`, for the
//! host's own tokens).
//!
//! ## Clock drift
//!
//! A phone whose clock is off by a step fails now and then and runs into the throttle; a
//! hardware token drifts further every year. Each authenticator learns an offset, in steps,
//! from the codes it gets accepted (at login, step-up and the sensitive calls), within bounds:
//!
//! - **Bounded.** `|offset| + skew ≤ MAX_SKEW` (10 steps): a code is accepted for the steps
//!   `[now − skew, now + skew]` and `[now + offset − skew, now + offset + skew]`, never outside
//!   `[now − 10, now + 10]`, whatever sequence of logins came before (a property test drives
//!   arbitrary codes at arbitrary times and checks exactly that). An authenticator whose skew
//!   is already 10 learns nothing. django-otp learns drift without a bound; privacyIDEA
//!   accepted a 20-minute-old code after its drift crept: here the bound is structural.
//! - **The window around now stays**, so a clock set right again still works at once (and
//!   the offset is learned back). The price: an authenticator with an offset accepts up to
//!   twice as many codes per guess, `2 × (2s + 1)` instead of `2s + 1` (6 in a million at the
//!   defaults), still within the ±10 steps.
//! - **Slow.** The offset moves only when two consecutive accepted codes of the authenticator
//!   agree on the same new offset; a code typed late once (the previous step) changes nothing.
//!   Each accepted code can only confirm an offset within reach of the current windows, so
//!   it follows a drifting clock step by step and cannot jump.
//! - **Audited and shown.** A change is audited (`ClockOffsetLearned`, from and to, in
//!   seconds); [`AuthenticatorInfo::clock_offset_seconds`](crate::account::AuthenticatorInfo::clock_offset_seconds)
//!   lets a host say "your phone's clock is about 60 seconds ahead".
//! - **Reset** when the authenticator is replaced (a new secret starts with no offset).
//! - Replay protection stays on the absolute step: the offset only moves the window.
//!
//! ## Replay protection
//!
//! RFC 6238 §5.2 says a verifier must not accept the second attempt of the same code. Verification
//! therefore returns the *time step* that matched, not a `bool`, and takes the last accepted
//! step: any step at or below it is refused. The service stores the new step in the user's
//! record with a compare-and-swap save, so two requests racing with the same code cannot both
//! win: one save succeeds, the other sees a version conflict, reloads, and is then refused as
//! a replay. The same mechanism makes recovery codes and mailed codes single-use.
//!
//! When the digits typed match more than one step of the window (adjacent steps share a code
//! about once in a million), the highest matching step is recorded, so the same six digits are
//! never accepted twice while they are still valid; at worst a user waits for the next step.
//!
//! ## One record, one compare-and-swap
//!
//! All mutable 2FA state of a user lives in one record with a version number, and
//! [`UserStore::save`](crate::UserStore::save) writes only if the version is unchanged. A host
//! that implements the store for its own database writes one conditional `UPDATE`; it cannot
//! get replay protection, one-time recovery codes or throttles subtly wrong, and those hold
//! across any number of app servers that share the database.
//!
//! To save a load, [`finish_login`](crate::TwoFactor::finish_login) starts from the record
//! that [`start_login`](crate::TwoFactor::start_login) kept in memory (see
//! [`login_snapshot_capacity`](crate::service::TwoFactorBuilder::login_snapshot_capacity)).
//! A stale snapshot is harmless: its verdict counts only if the save with the snapshot's
//! version succeeds, which proves the stored record *was* the snapshot; if another server,
//! an admin or a concurrent request changed it, the save conflicts and the check runs again
//! on a fresh load. A verdict that would save nothing (a throttled attempt, say) is never
//! taken from a snapshot, since nothing would validate it: it is checked again on a fresh
//! load. This rests on versions never repeating for a user, which the store contract
//! guarantees; a host that deletes and re-creates rows behind the service should turn
//! snapshots off.
//!
//! ## Rate limits
//!
//! A 6-digit code with a ±1 window gives a guesser three chances in a million per try. Without
//! a limit, that is broken in a day of scripted attempts. Code checks are limited per user
//! (default 5 per hour) and *counted before the check*: the increment and the verdict are saved
//! by the same compare-and-swap, so concurrent guesses cannot slip past the limit. Mailed codes
//! are also limited per hour, because every send costs the user an e-mail and the host money:
//! 5 codes sent, and 15 attempts to send one, delivered or not (see
//! [when the mail server fails](#when-the-mail-server-fails)).
//!
//! There is **one budget per user**, whatever the call: second steps of a login
//! (`finish_login`), confirming codes (`finish_enrollment`) and the codes that authorise a
//! rotation or turning 2FA off all count against it, including `finish_login` calls made
//! before the user has any factor (they are refused, and counted before anything is looked
//! at). So someone who knows the password can spend the budget with nonsense and keep the
//! user from confirming a set-up, or from logging in once set up, for up to an hour. This is
//! deliberate:
//!
//! - A separate budget for enrollment would not stop it. Wherever the password alone may
//!   enroll (an optional policy, a running grace period, forced enrollment: see
//!   [who may enroll](#who-may-enroll)), the set-up page is open to whoever passed the
//!   password check, so the same person can submit wrong confirming codes, or cancel the
//!   enrollment and start it again with a new secret; under forced enrollment they can even
//!   set up an authenticator of their own, which no throttle prevents.
//! - Every one of those calls is a guess at something: a mailed code, the active
//!   authenticator, or an administrator-provisioned secret whose confirmation completes a
//!   login. One budget means no mix of calls gives a guesser more than 5 tries an hour.
//!
//! The problem to fix is the leaked password, not the throttle: the block lifts by itself an
//! hour after the failures, and the audit trail shows them (`LoginFailed`, `EnrollmentFailed`,
//! `LoginThrottled`, with the request's context for login calls).
//!
//! ## When the mail server fails
//!
//! A mailed login code is the one notice whose delivery the record keeps. The code is saved
//! *before* the mailer is called, as the record's outgoing code ("on its way"), and the
//! mailer's answer is saved by a second compare-and-swap: delivered, it becomes the code the
//! login waits for (replacing the one mailed before); refused, it is marked not sent. So a
//! failure loses nothing and leaves nothing half-done:
//!
//! - `start_login` answers [`LoginDecision::CodeNotSent`](crate::LoginDecision::CodeNotSent)
//!   with the ticket and the mailer's error (for the log): the host says "we could not send
//!   the code" and offers to try again; [`resend_mailed_code`](crate::TwoFactor::resend_mailed_code)
//!   with that ticket mails a fresh code once the server is back. A resend that fails is
//!   [`Error::Mailer`](crate::Error::Mailer), and the ticket stays good.
//! - A code that was delivered keeps working until it expires or a newer one is delivered: a
//!   resend that fails never takes it away.
//! - A code the mailer refused is never accepted, and is not counted against the 5 codes an
//!   hour ([`mail_sends_per_window`](crate::Settings::mail_sends_per_window)): the user
//!   is not throttled pointing at codes they never received. Every attempt, delivered or not,
//!   counts against [`mail_send_attempts_per_window`](crate::Settings::mail_send_attempts_per_window)
//!   (15 an hour), so someone with the password cannot make the server hammer the mail
//!   server (or a victim's mailbox) without bound.
//! - If the process dies between the mailer and the second save (or that save fails), the
//!   code stays "on its way": it may have arrived, so it is accepted and stays counted as
//!   sent. The next send replaces it.
//! - Two sends that race (a double click on "send a new code") are both counted by their own
//!   compare-and-swap; the one saved last is the code on its way, and the answer for the
//!   other finds nothing to mark (a failure is still given back). If the later one is
//!   delivered its code works; if it fails, the code delivered before both still works.
//!
//! The cost: one more save per code mailed (`start_login` with a mailed code is one load and
//! two saves, the second starting from the record the first wrote; `finish_login` still
//! starts from the record `start_login` ended with), and, while a code is on its way, two
//! valid codes (the one delivered and the new one), so a guess hits with probability 2 in
//! 10^6 instead of 1. Normally that lasts as long as the mailer takes; after a lost answer,
//! until the next send or the code's expiry. Five guesses an hour (the
//! [rate limit](#rate-limits)) stay five guesses.
//!
//! ## Forced enrollment at login
//!
//! Under a policy that blocks users without an authenticator
//! ([`WhenUnenrolled::BlockUntilEnrolled`](crate::WhenUnenrolled::BlockUntilEnrolled)),
//! `start_login` answers [`LoginDecision::MustEnroll`](crate::LoginDecision::MustEnroll), and
//! only enrolling gets the user in. The two halves are linked by the login ticket
//! ([`PendingLogin`](crate::PendingLogin)) that `MustEnroll` carries:
//!
//! 1. **Re-authentication.** The password check just before `start_login` is the fresh
//!    re-authentication that enrollment needs, and the ticket stands for it: keep it in the
//!    half-logged-in session (cycling the session id) and call
//!    [`start_forced_enrollment(&pending, account)`](crate::TwoFactor::start_forced_enrollment)
//!    on the set-up page. The password check stays fresh for
//!    [`Settings::reauth_max_age`](crate::Settings::reauth_max_age) (10 minutes); after that
//!    the set-up page is refused: ask for the password again. Start it in the POST that
//!    checked the password, and let the set-up page show it with
//!    [`show_forced_enrollment(&pending, account)`](crate::TwoFactor::show_forced_enrollment):
//!    the same QR code on every reload, read-only (nothing saved, no audit row per reload). A
//!    second `start_forced_enrollment` while it is pending resumes it too (same secret and
//!    expiry), audited as `EnrollmentResumed`.
//! 2. **Completion.** [`finish_forced_enrollment(&pending, code)`](crate::TwoFactor::finish_forced_enrollment)
//!    confirms the authenticator and completes the login while the ticket is open
//!    ([`Settings::login_challenge_ttl`](crate::Settings::login_challenge_ttl), 15 minutes):
//!    [`Enrolled::login_completed`](crate::account::Enrolled::login_completed) is `true`, the
//!    audit trail records `Enrolled` then `LoginSucceeded { factor: Totp }` (the confirming
//!    code is that login's second factor), and the ticket is used up. Only these two calls
//!    complete a login: an enrollment confirmed from an account page
//!    ([`finish_enrollment`](crate::TwoFactor::finish_enrollment)) completes none. After the
//!    deadline the ticket is refused ([`Error::LoginExpired`](crate::Error::LoginExpired)):
//!    ask for the password again; the next login asks for a code.
//! 3. **Which session.** Log in only the session that holds the ticket, after cycling its
//!    session id (session fixation: someone who planted the id would otherwise share the
//!    login).
//!
//! ```
//! use twofactor::account::{LoginContext, LoginDecision};
//! use twofactor::{Clock, Error, KeyUri, MemoryStore, Principal, RequiredForAll, Totp, TwoFactor};
//! use twofactor::testing::{ManualClock, RecordingMailer};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(1_700_000_000);
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
//!     .policy(RequiredForAll::default())
//!     .clock(&clock)
//!     .build();
//! let alice = Principal::new("alice");
//!
//! // The password is right; the session keeps the ticket (who, and when).
//! let decision = tf.start_login(&alice, None, &LoginContext::new()).await?;
//! let LoginDecision::MustEnroll { pending } = decision else { panic!("{decision:?}") };
//! assert_eq!(pending.password_checked_at(), clock.now());
//!
//! // The set-up page, a minute later: the ticket is the re-authentication.
//! clock.advance(60);
//! let started = tf.start_forced_enrollment(&pending, "alice").await?;
//! let app = KeyUri::parse(started.uri())?.into_secret();
//! clock.advance(60);
//! let code = Totp::default().generate(&app, clock.now()).to_string();
//! let enrolled = tf.finish_forced_enrollment(&pending, &code).await?;
//! assert!(enrolled.login_completed()); // cycle the session id, log this session in
//!
//! // The ticket is used up.
//! let again = tf.finish_forced_enrollment(&pending, &code).await;
//! assert!(matches!(again, Err(Error::LoginExpired)));
//! # Ok(())
//! # }
//! ```
//!
//! ## Who may enroll
//!
//! [`start_enrollment`](crate::TwoFactor::start_enrollment) always needs a fresh password
//! check. Whether that is *enough* depends on what the password alone gets the user today,
//! which is why it takes the [`Principal`](crate::Principal) and asks the policy:
//!
//! | the policy says, for this unenrolled user | to enroll, the user needs |
//! |---|---|
//! | `Off`, `Exempt`, `Optional` | the password |
//! | `Required`, grace period running | the password (it alone logs them in until then) |
//! | `Required { when_unenrolled: BlockUntilEnrolled }` | the password (enrolling *is* the login: [forced enrollment](#forced-enrollment-at-login)) |
//! | `Required { when_unenrolled: MailCode }`, no grace left | the password **and** a proof of a mailed code from this session, younger than [`Settings::reauth_max_age`](crate::Settings::reauth_max_age) (10 minutes): [`start_enrollment_with_proof`](crate::TwoFactor::start_enrollment_with_proof) |
//!
//! The last row closes a downgrade: without it, someone who has the password but not the
//! mailbox could skip the mailed code, enroll an authenticator of their own and log in with
//! it from then on; the mailbox factor would never have been used. `finish_login` with a
//! mailed code hands out a [`SecondFactorProof`](crate::SecondFactorProof) of it
//! ([`LoginGranted::proof`](crate::LoginGranted::proof)); keep it in the session that logged
//! in, and pass it to `start_enrollment_with_proof`. Without it enrolling is refused with
//! [`Error::SecondFactorRequired`](crate::Error::SecondFactorRequired). The proof belongs to
//! a session, not to the user: the victim logging in with the code from their own mailbox
//! gives someone who has only the password nothing. And the record remembers that login
//! asked the user for a mailed code, so passing a principal without the roles or tenant
//! that trigger the policy does not skip the check. A trusted-device login yields no proof
//! (a stolen cookie must not turn into a permanent factor); begin the login without the
//! token to mail a code.
//!
//! The check is made when enrollment starts, not again when it is confirmed: an
//! authenticator enrolled a moment before the policy changes survives the change anyway, so
//! re-checking at `finish_enrollment` would add nothing. Rotation needs a second factor of
//! the current authenticator (a proof or a code), and an administrator's
//! [provisioning by mail](crate::TwoFactor::start_enrollment_by_mail_dangerous) sends the
//! secret to the mailbox itself, so both already use a second factor. During a grace period
//! the password alone logs in, and enrolling then is the point of the grace period; the
//! [`Enabled`](crate::Notice::Enabled) notice tells the mailbox owner either way.
//!
//! ```
//! use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
//! use twofactor::{Clock, Error, MemoryStore, Principal, RequiredForAll, TwoFactor, WhenUnenrolled};
//! use twofactor::testing::{ManualClock, RecordingMailer};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(1_700_000_000);
//! let policy = RequiredForAll::new(WhenUnenrolled::MailCode);
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
//!     .policy(policy)
//!     .clock(&clock)
//!     .build();
//! let bob = Principal::new("bob");
//! let ctx = LoginContext::new();
//! let decision = tf.start_login(&bob, None, &ctx).await?;
//! let LoginDecision::CodeMailed { pending } = decision else { panic!("{decision:?}") };
//! let password_checked = Reauthenticated::at(pending.password_checked_at());
//!
//! // The password alone does not open the set-up page:
//! let refused = tf.start_enrollment(&bob, "bob", password_checked).await;
//! assert!(matches!(refused, Err(Error::SecondFactorRequired)));
//!
//! // The proof of the mailed code, from this session, does (for the next 10 minutes):
//! let code = tf.mailer().last_login_code_for(&bob.user).unwrap();
//! let granted = tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx).await?;
//! tf.start_enrollment_with_proof(&bob, "bob", password_checked, &granted.proof).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Login challenges
//!
//! When `start_login` asks an enrolled user for a TOTP or recovery code
//! ([`LoginDecision::Challenge`](crate::LoginDecision::Challenge)), it stores nothing: it
//! loads the record, asks the policy and answers, with no write. A full login is one load +
//! save round trip, not two. The link between the two steps is the
//! [`PendingLogin`](crate::PendingLogin) the answer carries (webauthn-rs style: the state a
//! host keeps between two calls is a type the library hands out and takes back):
//!
//! - `finish_login` takes the pending login, not a user id: there is no way to check a
//!   login's second factor without one. The pending login names the principal the policy was
//!   asked about (so the host does not rebuild roles and tenant for the second call), the
//!   time of the password check, its deadline
//!   ([`Settings::login_challenge_ttl`](crate::Settings::login_challenge_ttl), 15 minutes by
//!   default; for a mailed code, the code's expiry: [`Settings::mailed_code_ttl`](crate::Settings::mailed_code_ttl),
//!   1 hour by default, since mail can be slow) and the factors it accepts.
//!   After the deadline `finish_login` refuses with
//!   [`Error::LoginExpired`](crate::Error::LoginExpired) before loading anything; a factor
//!   it does not accept is counted and refused like a wrong code.
//! - Guessing is bounded by the code-check throttle: every `finish_login` is counted before
//!   the code is looked at, in the same compare-and-swap save as the verdict.
//! - Replay protection (the last used time step, consumed recovery codes) and the policy,
//!   asked fresh by `finish_login` about the pending login's principal, are unchanged.
//!
//! ## The login ticket
//!
//! A [`PendingLogin`](crate::PendingLogin) is a **sealed ticket**: its claims (a principal,
//! three times, the step and the factors it accepts, a nonce, the user's ticket generation)
//! are MAC'd with HMAC-SHA-256 under the tickets-and-proofs subkey of the service's
//! [`ServiceKeys`](crate::ServiceKeys), and it travels as one opaque string
//! ([`as_str`](crate::PendingLogin::as_str), or serde as a string). It holds nothing secret,
//! and keeping it where the client can write it (an unsigned cookie, a hidden form field) is
//! safe:
//!
//! - **Any edit is refused** (another user, other roles or tenant, a later deadline, other
//!   factors, another step, a token of another kind or from a server with another key) with
//!   [`Error::InvalidTicket`](crate::Error::InvalidTicket), before anything is loaded:
//!   nothing is checked, nothing counted against the user it names, nothing saved.
//! - **Single use**: once a login completes with it (a factor at `finish_login`, or forced
//!   set-up), it is refused ([`Error::LoginExpired`](crate::Error::LoginExpired)), and so is
//!   one past its deadline. The record keeps the second the last such ticket was issued in
//!   (when its password was checked: `tickets.through`, format 7) and the nonces of the
//!   tickets issued in that second that completed a login (`tickets.at_through`): that ticket
//!   **and every ticket of the user issued before it** are refused from then on. A completed
//!   login therefore also ends the user's other logins that began before it and still wait
//!   for their second step (the other browser is asked to start again; one started later, or
//!   in the same second, is untouched). The price of single use is a number and a nonce or
//!   two per record, whatever the number of logins (a list of every used ticket, formats 3 to
//!   6, doubled the record of a user who logs in every 30 s). A table writer who rolls it
//!   back is refused under [sealing](crate::seal) like any other edit. Times are the
//!   service's clock: app servers whose clocks disagree by more than the seconds a second
//!   step takes would refuse a login begun on the late one right after a login completed on
//!   the early one (it reads as begun before it); keep them on NTP, as TOTP needs anyway.
//! - **Revocable**: [`revoke_login_tickets`](crate::TwoFactor::revoke_login_tickets) (call it
//!   when the password changes) and an administrator's reset refuse every ticket and proof
//!   issued before.
//!
//! Every app server of a deployment must share the key (`TwoFactorBuilder::keys`, or
//! `sealed` with the `seal` feature): a ticket from a server with another key is refused,
//! never accepted. Without keys the service makes a random key per process, so tickets do
//! not survive a restart.
//!
//! What a ticket still stands for is the host's **password check**, for whoever holds it:
//! keep it out of URLs and logs, end the half-logged-in session at its
//! [`expires_at`](crate::PendingLogin::expires_at), and **cycle the session id** when you
//! store it and again when the login completes (session fixation). A ticket parsed back from
//! a string is not verified until a call takes it: use its accessors for display, never for
//! a decision of your own.
//!
//! The [`SecondFactorProof`](crate::SecondFactorProof) a completed second step hands out is
//! sealed the same way, but it is a bearer token for its short life (10 minutes): keep it in
//! the server-side session of the user who proved the factor.
//!
//! Logins that need state still store it, with an expiry: a mailed code (its salted hash, and
//! the login waiting for it, open as long as the code: a late mailed code is refused and
//! audited as `Expired`), a login waiting for enrollment
//! ([forced enrollment](#forced-enrollment-at-login)), a trusted device's last use, and the
//! tickets already used (until they expire).
//!
//! ## Second-factor proofs and sensitive calls
//!
//! A successful second step ([`LoginGranted::proof`](crate::LoginGranted::proof)), a
//! confirmed enrollment ([`Enrolled::proof`](crate::account::Enrolled::proof)) and a step-up
//! ([`verify_second_factor`](crate::TwoFactor::verify_second_factor)) hand out a
//! [`SecondFactorProof`](crate::SecondFactorProof): who, which factor, when, sealed like a
//! ticket and bound to the user's ticket generation. The host keeps it in the session of the
//! user who proved the factor; the calls that could turn a stolen password (or a stolen
//! session without the factor) into a lasting foothold take it:
//!
//! | call | needs, besides a fresh password check |
//! |---|---|
//! | `start_enrollment` under a mailed-code requirement (the policy's answer, **or** the record's memory that `start_login` asked this user for a mailed code) | a proof of a **mailed code** from this session ([`start_enrollment_with_proof`](crate::TwoFactor::start_enrollment_with_proof)) |
//! | [`regenerate_recovery_codes`](crate::TwoFactor::regenerate_recovery_codes) | a proof of a TOTP or recovery code, or such a code typed now |
//! | [`start_rotation`](crate::TwoFactor::start_rotation) | the same |
//! | [`disable`](crate::TwoFactor::disable) | the same, and a policy that does not require 2FA of this principal ([`Error::RequiredByPolicy`](crate::Error::RequiredByPolicy) otherwise; [`status_for`](crate::TwoFactor::status_for) says `required`) |
//!
//! A proof is accepted for [`Settings::reauth_max_age`](crate::Settings::reauth_max_age)
//! (10 minutes), for its own user only, and not after the user's tickets were revoked or 2FA
//! was reset. A proof in another session (the victim's own mailed-code login) gives someone
//! who has only the password nothing: the proof is where the factor was proved. A
//! trusted-device cookie never yields a proof. What a proof cannot stop: whoever holds the
//! session that holds it, within its 10 minutes (the same as any "sudo mode"); keep the
//! window short for administrators with [`Settings::reauth_max_age`](crate::Settings::reauth_max_age).
//!
//! ## Step-up
//!
//! [`verify_second_factor`](crate::TwoFactor::verify_second_factor) asks a logged-in user for
//! a TOTP or recovery code again before a sensitive action (GitHub's and GitLab's "sudo
//! mode"). It is a login's second step without the login (`tests/step_up.rs` pins each
//! point):
//!
//! - **no login side effects**: no trusted device, no login ticket used up (a login open in
//!   another tab still completes), no login waiting for a mailed code or for enrollment
//!   opened or closed, no "new sign-in" notice, no `LoginSucceeded`. The record changes in
//!   two places only: the throttle and the replay state of the factor used;
//! - **the same throttle** as a login: failures of either count against both (5 checks an
//!   hour by default), and a throttled step-up checks nothing;
//! - **the same replay protection**: a TOTP code accepted at login is refused at step-up and
//!   the other way round, and a recovery code works once across both;
//! - **the same audit**: `SecondFactorVerified`, or `VerificationFailed { operation: StepUp,
//!   .. }` with the reason a login's `LoginFailed` would carry; a recovery code used here is
//!   audited and notified with the count left, like at login;
//! - **a trusted-device cookie never counts**: there is no [`Factor`](crate::Factor) for one,
//!   no proof of one can be issued or parsed, and the claims of a login it allows stay at
//!   AAL1 (below). A mailed code is no step-up factor either.
//!
//! The window is the host's: [`check_proof(&user, &proof, max_age)`](crate::TwoFactor::check_proof)
//! accepts a proof younger than `max_age` seconds (exactly `max_age` old is too old), so each
//! sensitive action chooses its own ("a second factor in the last 10 minutes" before a
//! payment, two hours for a settings page, GitHub's sudo default). The library's own sensitive
//! calls (new recovery codes, a new phone, turning 2FA off) keep theirs,
//! [`Settings::reauth_max_age`](crate::Settings::reauth_max_age), 10 minutes. The `axum`
//! module's `require_recent_2fa(max_age)` is this check as a route guard (and hands the
//! checked claims to the handler).
//!
//! ## Assurance claims: amr and AAL
//!
//! Every grant and every proof says how the user was authenticated, as
//! [`AssuranceClaims`](crate::AssuranceClaims): the methods completed, each with its time
//! and authenticator, and from them the `amr` values, a NIST SP 800-63B assurance level and
//! `auth_time`. Where they come from:
//!
//! | grant | methods (`amr`) | level |
//! |---|---|---|
//! | [`finish_login`](crate::TwoFactor::finish_login) with a TOTP code | `pwd` (when `start_login` ran), `otp` (now); `amr` adds `mfa` | AAL2 |
//! | the same with a recovery code | `pwd`, `lookup_secret`; `mfa` | AAL2 |
//! | the same with a mailed code | `pwd`, `email_code` | AAL1 |
//! | [`start_login`](crate::TwoFactor::start_login) granted by a remembered device | `pwd`, `remembered_device` (naming the device) | AAL1 |
//! | `start_login` granted by the policy (off, not required, exempt, grace period) | `pwd` | AAL1 |
//! | forced set-up completing a login | `pwd` (the ticket's), `otp` | AAL2 |
//! | enrollment from the account page, step-up | the factor alone (`otp`, `lookup_secret`) | AAL1 on its own |
//!
//! **The names.** RFC 8176 registers `pwd` ("password-based authentication"), `otp`
//! ("one-time password"; the RFC names RFC 4226 and RFC 6238 as what it covers) and `mfa`
//! ("multiple-factor authentication"; "when this is present, specific authentication methods
//! used may also be included"), and no value for the other three. For them this crate does
//! what Ory Kratos does for its sessions' `authentication_methods` (`password`, `totp`,
//! `lookup_secret`, `code`, `webauthn`): a plain name that says what happened.
//! `lookup_secret` is Kratos' name for recovery codes and NIST's term for them (SP 800-63B
//! section 5.1.2, "look-up secrets"). `email_code` says where the code went: calling it `otp`
//! would let a relying party read an e-mail as an authenticator, which is exactly the
//! confusion the level below must not allow. `remembered_device` is a cookie from an earlier
//! login, not a factor at all. [`AuthMethod::is_rfc8176`](crate::account::AuthMethod::is_rfc8176)
//! tells the registered ones apart; agree on the others with whoever reads your tokens.
//! `mfa` is added exactly when the claims reach AAL2 (the password and a TOTP or recovery
//! code): a mailed code or a remembered device next to the password does not make it.
//! `hwk` and `swk` name security keys (WebAuthn): see
//! [Security keys](#security-keys-webauthn).
//!
//! **The levels**, in NIST SP 800-63B terms (checked against revision 3, June 2017 with its
//! 2020 errata; its revision-4 draft of 2023 keeps each rule cited here under the same section
//! numbers; the final revision 4 (2025) was not at hand to check word for word):
//!
//! - **Password + TOTP reaches AAL2.** Section 4.2.1 permits "a combination of two
//!   single-factor authenticators", a memorized secret and a possession authenticator such as
//!   a single-factor OTP device (section 5.1.4: "hardware devices and software-based OTP
//!   generators installed on devices such as mobile phones"). The verifier side is this
//!   crate's: the OTP secret has at least 112 bits (5.1.4.1; 160 by default, never fewer than
//!   128 for a secret this crate generates; one imported from elsewhere is as long as it
//!   was, often 80 bits, which falls short), a time-based OTP is accepted only once (5.1.4.2;
//!   replay protection), and failed attempts are rate-limited to no more than 100 in a row
//!   (5.2.2; 5 an hour here). The claims do not look at the secret's length: a deployment
//!   that imports short secrets and claims AAL2 should replace them. Password + recovery code
//!   reaches AAL2 the same way: a look-up secret (5.1.2) with at least 20 bits of entropy (80
//!   here). What AAL2 also needs is the host's: the password rules (5.1.1), TLS (an
//!   "authenticated protected channel"), FIPS 140 validated cryptography where a federal
//!   agency requires it, and the session limits below.
//! - **A mailed code does not reach AAL2.** Section 5.1.3.1: "Methods that do not prove
//!   possession of a specific device, such as voice-over-IP (VOIP) or email, SHALL NOT be used
//!   for out-of-band authentication" (the revision-4 draft: "Email SHALL NOT be used for
//!   out-of-band authentication because it also does not prove possession of a specific
//!   device and is typically accessed using only a memorized secret"). A mailed code is no
//!   authenticator 800-63B recognises, so a login with password and mailed code stands on the
//!   password: AAL1. (It is still worth asking for: it proves the mailbox, which is what a
//!   mailed-code policy is for.)
//! - **A remembered device does not reach AAL2**, even though it was set at an AAL2 login. The
//!   cookie is a bearer secret that restates that older login for its whole lifetime
//!   ([`Settings::trusted_device_ttl`](crate::Settings::trusted_device_ttl), 90 days), and
//!   800-63B does not let a secret do that: at AAL2 "authentication of the subscriber SHALL be
//!   repeated at least once per 12 hours during an extended usage session, regardless of user
//!   activity", and after "any period of inactivity lasting 30 minutes or longer" (4.2.3);
//!   "session secrets SHALL be non-persistent" (7.2; the cookie is meant to survive a browser
//!   restart); "a session SHALL NOT be extended past the guidelines in Sections 4.1.3, 4.2.3,
//!   and 4.3.3 (depending on AAL) based on presentation of the session secret alone" (7.2);
//!   and a session "SHALL NOT be considered at a higher AAL than the authentication event"
//!   (7.1). Reauthenticating at AAL2 within the 12 hours takes "a memorized secret or
//!   biometric" with the still-valid session secret (Table 7-1, whose note says why: "the
//!   session secret is *something you have*"), never the other possession factor alone. So a
//!   login by password and remembered device is a new authentication event with one
//!   authenticator, the password: AAL1. Hosts that let such a session do sensitive things
//!   step it up first (below).
//! - **AAL3** needs "a hardware-based authenticator and an authenticator that provides
//!   verifier impersonation resistance" (4.3): nothing this crate verifies today; hardware
//!   keys will be the first.
//!
//! **Asking for a level.** [`claims.satisfies(level, max_age, now)`](crate::AssuranceClaims::satisfies)
//! answers `Ok(())` or [`Unsatisfied`](crate::account::Unsatisfied) with the methods that would
//! satisfy it. As in Keycloak, where each level of authentication has its own maximum age and
//! a step-up repeats only the level that expired, `max_age` applies to the method that lifts
//! the claims to the level: for AAL2 a second factor within `max_age` (the password may be
//! older; check it with `satisfies(Aal::Aal1, ..)` or the session's lifetime). Ory Kratos'
//! `highest_available` (AAL2 for users who have a second factor, AAL1 for the others) is
//! [`TwoFactorStatus::highest_available_aal`](crate::account::TwoFactorStatus::highest_available_aal).
//! A step-up proof's claims name the factor alone (the step-up did not see the password):
//! [`merge`](crate::AssuranceClaims::merge) them into the session's.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use twofactor::account::{AuthMethod, CompletedMethod};
//! use twofactor::AssuranceClaims;
//! use twofactor::account::Aal;
//! // The session's claims, from `granted.claims` at login (kept in the session).
//! let session = AssuranceClaims::new(CompletedMethod::new(AuthMethod::Password, 1_000))
//!     .with(CompletedMethod::new(AuthMethod::Otp, 1_030));
//! let now = 1_030 + 3_600;
//! // "AAL2 within 10 minutes" before a payment: not any more.
//! let e = session.satisfies(Aal::Aal2, 600, now).unwrap_err();
//! assert_eq!(e.needed, [AuthMethod::Otp, AuthMethod::RecoveryCode]); // ask for a code
//! // ... verify_second_factor, check_proof(.., 600) -> its claims, merged in:
//! let step_up = AssuranceClaims::new(CompletedMethod::new(AuthMethod::Otp, now));
//! let session = session.merge(&step_up);
//! assert!(session.satisfies(Aal::Aal2, 600, now).is_ok());
//! // In a token: `amr`, an `acr`-like level, `auth_time`.
//! let token = serde_json::json!({
//!     "amr": session.amr(),          // ["pwd", "otp", "mfa"]
//!     "acr": session.aal().as_str(), // "aal2"
//!     "auth_time": session.auth_time(),
//! });
//! assert_eq!(token["acr"], "aal2");
//! # }
//! ```
//!
//! Serialized with serde, the claims carry `amr`, `aal`, `auth_time` and the methods; reading
//! them back checks that `amr`, `aal` and `auth_time` follow from the methods, so a level edited
//! in a stored session is refused, not believed. The claims sealed in a proof are covered by
//! its MAC: an edited claim (a mailed code turned into `otp`, a later password) is refused
//! with the rest of the proof (`tests/assurance_claims.rs`). Proofs sealed before the claims
//! existed (encoding version 1) are refused with
//! [`DomainError::OutdatedProof`](crate::account::DomainError::OutdatedProof) when parsed
//! (`Error::SecondFactorRequired` from the service): they lived minutes, so the user is
//! asked for the second factor again rather than given claims nobody sealed.
//!
//! ## Recovery codes that warn before they run out
//!
//! Every use of a recovery code is audited as `RecoveryCodeUsed { remaining }` and notified
//! ([`Notice::RecoveryCodeUsed`](crate::Notice::RecoveryCodeUsed), with the count left and
//! whether it is low), wherever it was used: to log in, at step-up, to start replacing the
//! authenticator. Where the same call replaces the set (new recovery codes) or turns 2FA off,
//! the use is audited and that call's own notice says what happened to the set.
//!
//! At [`Settings::recovery_codes_low_at`](crate::Settings::recovery_codes_low_at) codes left or
//! fewer (3 by default; 0 warns only when none are left), every login carries
//! [`LoginGranted::recovery_codes_low`](crate::LoginGranted::recovery_codes_low), whatever
//! factor it used, and so does [`TwoFactorStatus`](crate::account::TwoFactorStatus): show
//! "generate new recovery codes". With none left the user is one lost phone from being locked
//! out: every login sets
//! [`LoginGranted::must_regenerate_recovery_codes`](crate::LoginGranted::must_regenerate_recovery_codes)
//! (the status too) until they make new ones, and the mail about the last code says they will
//! be asked to. A host sends them to make new ones before anything else (the login's proof is
//! fresh enough for [`regenerate_recovery_codes`](crate::TwoFactor::regenerate_recovery_codes));
//! the `axum` module does, after a login by code and after one by a remembered device. The
//! library cannot force a host to act on a flag, which is why the user is told by mail too.
//! Regenerating replaces the whole set: the old codes left unused stop working at once.
//!
//! ## What the caller sees, and what the audit trail sees
//!
//! A wrong code, a replayed code and a late mailed code return the same error to the caller:
//! telling them apart would tell an attacker which codes were once valid. Unknown users and users
//! without 2FA look the same from outside, so the login flow does not enumerate accounts. The
//! audit trail records the reason, for the people who investigate, with one exception: a used
//! recovery code is audited as `WrongCode`, exactly like a code that was never issued.
//!
//! **Why the trail does not tell a used recovery code from a wrong one.** The same error is not
//! enough: the audit sink runs inside the request (a host formats or writes each event before
//! the response goes out), so whatever the trail tells apart, the response time tells apart
//! too. Timed through [`TwoFactor::finish_login`](crate::TwoFactor::finish_login)
//! (`benches/dudect.rs`, results in `benches/DUDECT.md`), a used code audited as `Replayed`
//! was refused measurably differently from a code never issued. That difference told whoever
//! holds a recovery code whether it was ever issued to this user: that a printed sheet, a
//! photo or a leaked list belongs to this account and is its current set, so its other codes
//! are worth trying. Now both are one refusal in every respect a host, its logs or the network
//! can see: the same error ([`Error::InvalidCode`](crate::Error::InvalidCode)), the same audit
//! event (`LoginFailed { reason: WrongCode }`), the same notice (`FailedCodeAttempt`), the
//! same record saved (one more counted check), and the same work in the check (a used entry
//! simply does not match; the typed code is parsed through a table, whatever its symbols).
//! `tests/recovery_refusal.rs` pins it. What the operator gives up: the trail no longer says
//! that a used recovery code was tried. Every use of a code is still in it once, as
//! `RecoveryCodeUsed` with the login it completed, and repeated failed recovery-code logins
//! still show as `LoginFailed { factor: RecoveryCode, .. }`.
//!
//! **A replayed TOTP code is still audited as `Replayed`**: it is how a relayed or
//! shoulder-surfed code shows up, and operators alert on it
//! ([`AuditKind::is_replay`](crate::audit::AuditKind::is_replay)). That refusal differs from
//! a wrong code's in time as well (the event, and the branch that picks it; row "TOTP replayed
//! vs wrong" in `benches/DUDECT.md`). What the difference reveals, exactly: that the digits
//! sent are this user's code for a time step of the verification window (by default the
//! current step and one either side) and that a login was accepted at that step or a later
//! one, i.e. that the user logged in with a code within about the last minute and a half.
//! Only someone who already holds a valid code can ask (seen, or guessed at one chance in a
//! million per try: the odds of guessing a code that would have let them in had the user not
//! just logged in), and the answer never lets them in: those steps are spent, and the next
//! step's code has nothing to do with them.
//!
//! Every failure is an [`Error`](crate::Error) whose [`kind`](crate::Error::kind) a host
//! matches on once (wrong code 401, throttled 429 with `Retry-After`, malformed input 400,
//! not allowed now 403, conflict 409, unavailable 503, misconfigured 500: the table is on
//! [`Error`](crate::Error)). Throttling in particular arrives one way, as
//! [`Error::Throttled`](crate::Error::Throttled), from `start_login` as from every call that
//! checks a code.
//!
//! ## Secrets
//!
//! [`Secret`](crate::Secret) zeroizes its bytes on drop, prints `[REDACTED]`, and has no
//! `PartialEq`. New secrets are 160 bits from the OS CSPRNG (RFC 4226 recommends 160, requires
//! 128; we refuse to generate fewer than 128). Importing a shorter existing secret is allowed —
//! some services still issue 80-bit ones — and [`Secret::strength`](crate::Secret::strength)
//! says how strong it is. Recovery codes and trusted-device tokens are stored only as hashes;
//! they are shown once.
//!
//! ## Threat model: who reads and who writes the table
//!
//! All of a user's 2FA state is one row: the [`TwoFactorRecord`](crate::account::TwoFactorRecord) a
//! [`UserStore`](crate::store::UserStore) keeps. Four kinds of people can get at it.
//!
//! **Anyone on the network** knows usernames and may know passwords. They must not get past
//! the second factor, and may not learn which time step matched or whether a guess was close:
//! codes are compared in constant time, every failure is the same `InvalidCode`, code checks
//! are throttled (counted before the check), a code is accepted once (the last used step
//! rides on the compare-and-swap), unknown users and users without 2FA look alike.
//!
//! **Someone who reads the table** (a leaked backup, an analytics replica, an SQL injection
//! elsewhere in the application) must not get what a login needs. With
//! [`SealedStore`](crate::seal::SealedStore) the TOTP secrets are encrypted under a key that
//! lives outside the database, bound to the user and slot. Recovery codes and trusted-device
//! tokens are stored as hashes only. In the process, a `SealedStore` keeps the secrets of the
//! last row it checked or wrote per user opened in memory, as the service's login snapshots
//! already do: no new exposure (see [the sealed store's cache](#the-sealed-stores-cache-of-opened-rows)).
//!
//! With a server-side [`CodeKey`](crate::account::CodeKey), recovery and mailed codes are
//! stored as keyed hashes, so the table alone cannot test a guess offline; without one, a
//! mailed code falls in microseconds (see [offline guessing](#offline-guessing-of-recovery-and-mailed-codes)
//! for the costs).
//!
//! **Someone who writes the table** (an SQL injection, a compromised replica promoted to
//! primary, an operator's mistake) must not be able to change what a login decides.
//! - *Without* sealing, nothing stops them: they can write a secret they know. Decoding is
//!   strict all the same: a row that is not exactly a record this crate wrote (an array, `{}`,
//!   an object that lost fields or gained some, a wrong type anywhere, an unknown format
//!   version) is a corrupt row, on every store. The login fails closed with a store error and
//!   nothing is saved over the row, so a damaged row never reads as "no 2FA" (which an opt-in
//!   policy would let in on the password alone, and an enforcing one would answer with a fresh
//!   enrollment by whoever holds the password), and the evidence stays for the operator.
//! - *With* [`SealedStore`](crate::seal::SealedStore), every record it saves carries a tag (a
//!   MAC, HMAC-SHA-256 under the record-MAC subkey of the [`Keyring`](crate::seal::Keyring)'s
//!   current key: see [keys, subkeys and re-sealing](#keys-subkeys-and-re-sealing)) over the
//!   canonical encoding of the whole record, bound to the user id and to the version the save
//!   creates. Every load checks it before using anything in the record. A planted trusted
//!   device or recovery code, cleared throttle counters, an older secret written back after a
//!   rotation, a row copied from another user, a row moved to another version, a removed tag:
//!   all are refused like a corrupt row
//!   ([`SealedStoreError::Tampered`](crate::seal::SealedStoreError::Tampered) or
//!   [`Untagged`](crate::seal::SealedStoreError::Untagged)). Only rows that never had a tag
//!   load without one, and only while migrating:
//!   [`accept_untagged`](crate::seal::SealedStore::accept_untagged) lets format-1 rows (no
//!   `"v"`, written by 0.1.0) through, [`accept_unsealed`](crate::seal::SealedStore::accept_unsealed)
//!   a bare store's rows (nothing sealed in them). A later row whose tag was removed is
//!   refused whatever is on, and so is an untagged row holding a sealed secret. The switches
//!   still weaken the check while they are on: a writer can rewrite a whole row in format 1,
//!   or (with `accept_unsealed`) make it look like a bare store's row with a secret they know
//!   or no factor at all. Turn them off when the migration is done, or adopt every row at once
//!   with [`reseal`](crate::seal::reseal) and turn them off right after.
//!
//! What no table-level check can catch, without state kept outside the table:
//! - **Rolling a whole row back** to an older state it really had (the record *and* its
//!   version column, as in a restored backup): the tag of that state was valid. This revives a
//!   revoked secret, a consumed recovery code, a revoked device or a used login ticket (one
//!   still before its deadline), and resets the throttle.
//!   Only a counter outside the database (for instance the latest version of each user kept
//!   by your application elsewhere, or a transparency log) detects it; this crate does not
//!   keep one. Restore backups of this table only together with a reset of 2FA for the users
//!   whose state changed since.
//! - **Deleting the row**: a user with no record has no 2FA. If your application must know
//!   that a user had 2FA, keep that fact elsewhere too (your user table), and treat "no
//!   record" for such a user as an error.
//!
//! **The client** (the browser between the two login steps) may hold the login ticket
//! ([`PendingLogin`](crate::PendingLogin)): it is sealed, single-use and revocable, and any
//! edit is refused before anything is loaded (see [the login ticket](#the-login-ticket)).
//! What it must not get is a second-factor proof, or the id of a session that completed a
//! login (cycle it).
//!
//! **The host application** is trusted: it decides who is logged in. The API makes the safe
//! path the easy one (paired calls carry the state, dangerous switches are named so), but a
//! host that grants a session without asking the library cannot be stopped by it.
//!
//! ## Keys, subkeys and re-sealing
//!
//! **One secret, a subkey per purpose.** A deployment keeps one server secret: under sealing,
//! the [`Keyring`](crate::seal::Keyring)'s current key; otherwise the secret given to
//! [`ServiceKeys::derive`](crate::account::ServiceKeys::derive). Nothing uses it directly.
//! HKDF-SHA256 (RFC 5869, a fixed salt, a distinct label per purpose) derives an independent
//! 256-bit subkey for each purpose; one-way, so a subkey reveals neither the secret nor the
//! other subkeys:
//!
//! | subkey (label `twofactor/v2/...`) | protects | its holder (with the table) could |
//! |---|---|---|
//! | `secret-encryption` | TOTP secrets in the table (XChaCha20-Poly1305, bound to user and slot) | read every TOTP secret sealed under it |
//! | `record-mac` | the tag of every record | write any record state the ring accepts: plant a secret, devices or recovery codes, clear throttles, remove the factor |
//! | `code-hashes` | digests of recovery and mailed codes | test code guesses offline (a mailed code in microseconds) |
//! | `tickets-and-proofs` | login tickets and second-factor proofs | forge tickets and proofs |
//! | `cookie-names` | names of trusted-device cookies | tell from a browser's cookies which accounts use it |
//!
//! [`Keyring::service_keys`](crate::seal::Keyring::service_keys) gives the last three, derived
//! from the current ring key exactly as `ServiceKeys::derive` would from the same bytes, so
//! `TwoFactor::builder(store).sealed(keyring)` manages one secret.
//!
//! **What was written before subkeys.** Earlier versions sealed secrets under the raw key and
//! keyed the record MAC and the code hashes with `HMAC-SHA-256(key, "twofactor/keyring/...
//! /v1")`. Those forms are still read, never written: opening tries the subkey, then the raw
//! key (the AEAD tag makes a wrong key fail cleanly); verifying tries the record-MAC subkey,
//! then the old MAC key; the old code keys are listed as old code keys, and digests name their
//! key. Each save rewrites a record in the current forms; re-sealing rewrites them all.
//!
//! **Rotation and re-sealing.** To rotate, make a new key current and keep the old one with
//! [`Keyring::with_old_key`](crate::seal::Keyring::with_old_key) on every app server, then
//! run [`seal::reseal`](crate::seal::reseal) (or `cli reseal` in the demo): it walks the store
//! ([`ListUsers`](crate::store::ListUsers)) and rewrites every record not yet in the current
//! forms under the current key, with the store's compare-and-swap (a concurrent login is never
//! lost or granted twice: the re-seal reloads on conflict and never writes over a newer
//! version). When its report [is complete](crate::seal::ResealReport::is_complete), the old
//! key can be dropped. Recovery codes cannot be rehashed (only the user has them): those
//! hashed under the old key's code key are listed in the report and fail closed
//! ([`Error::UnknownCodeKey`](crate::service::Error::UnknownCodeKey)) once the key is gone,
//! until the user regenerates them; for a key retired on schedule, keep its code key as an
//! old code key ([`ServiceKeys::with_old_code_key`](crate::account::ServiceKeys::with_old_code_key))
//! until they have. The ticket and cookie-name subkeys follow the current key: a rotation
//! refuses the login tickets in flight (the user starts the login again) and renames the
//! device cookies (each trusted device is asked for a code once more).
//!
//! **What a retired key still in the ring can forge.** Everything in the table: whoever holds
//! a key that is in the ring, current or old, can seal a secret they know and tag any record
//! state under its id, and every load accepts it, for any user. Not tickets, proofs or cookie
//! names (only the current key's subkeys make those). So a key is retired only when it has
//! left the ring, and a re-seal is what lets it leave.
//!
//! **A leaked key.** Make a new key current at once, so nothing more is sealed or tagged under
//! the leaked one, re-seal, then drop the leaked key from the ring, keeping the window between
//! the first and last step short: a record forged under the leaked key meanwhile would be
//! re-sealed with the rest (compare the report's counts with what you expect). If the leak
//! may have come with write access to the table, drop the leaked key at once instead, without
//! re-sealing: the records sealed under it then fail closed (a login is refused, never
//! granted) until an administrator resets those users. Either way, the TOTP secrets sealed
//! under a leaked key are as good as known to whoever also has a copy of the table: ask those
//! users to set up their authenticator again.
//!
//! ## The sealed store's cache of opened rows
//!
//! Checking a row's tag and opening its secret are most of what sealing costs a load. A
//! [`SealedStore`](crate::seal::SealedStore) therefore remembers, per user, the row it last
//! checked and opened or wrote itself: its version, its exact stored text, and its secrets
//! opened. When the inner store hands back that very text at that very version
//! ([`UserStore::load_encoded`](crate::store::UserStore::load_encoded): the memory and SQL
//! stores), the load takes the secrets from the cache instead of checking the tag and opening
//! them again; the rest of the record is decoded from the text the store returned, as on every
//! load. A TOTP login is then one load answered this way and one save (one encoding, one tag),
//! with no decryption at all.
//!
//! **What it trusts, and why that is enough.** The verdict on a row is a function of the user,
//! the version, every byte of the text, and the keys: the tag covers the user id, the version
//! and the encoding, and the secret's associated data binds the user and slot. The cache
//! compares all of the first three (the user is its key; version and text must be equal, byte
//! for byte) and answers with what the full check gave for exactly those inputs, so it can
//! only answer what the full check would answer:
//!
//! - a row rewritten in the table (one byte anywhere, another spelling, a planted field) is
//!   other bytes: checked, and refused as without the cache;
//! - the same text moved to another version or copied to another user: another key or version,
//!   checked and refused;
//! - a row another server wrote (its own cache, the same table) has a new version and new
//!   bytes: checked and opened, and it replaces the entry;
//! - an older row the user really had, written back with its version (a restored backup): the
//!   cache answers it only if it is byte for byte a row this store checked, and then as the
//!   full check does (it is accepted either way: that rollback is the limit the
//!   [threat model](#threat-model-who-reads-and-who-writes-the-table) states, no worse);
//! - rows let through untagged while migrating are never remembered, and changing
//!   [`accept_untagged`](crate::seal::SealedStore::accept_untagged) or
//!   [`accept_unsealed`](crate::seal::SealedStore::accept_unsealed) empties the cache.
//!
//! The keys are the fourth input, and the cache does not outlive them. A
//! [`Keyring`](crate::seal::Keyring) is fixed once built: a rotation, a re-seal's new key, a
//! leaked key dropped from the ring all mean a new keyring, so a new `SealedStore` with an
//! empty cache (a re-seal also rewrites every row: new bytes). A
//! [`SecretCipher`](crate::seal::SecretCipher) over a KMS whose keys can be withdrawn while
//! the process runs says so through
//! [`cache_generation`](crate::seal::SecretCipher::cache_generation): an entry only answers
//! under the generation it was checked in, and a cipher that does not implement it (the
//! default, `None`) gets no cache at all.
//!
//! **Memory.** At most [`cache_capacity`](crate::seal::SealedStore::cache_capacity) users
//! (10,000 by default; an arbitrary one is evicted when full), each the stored text (1.5 to
//! 4 KB) and the opened secrets. The secrets are zeroized when an entry is evicted, replaced
//! or dropped, and nothing of the cache is printed (`Debug` shows its capacity only). Someone
//! who can read the process's memory reads the same secrets in the service's login snapshots
//! and in every record being processed: the cache adds no new kind of exposure.
//! `cache_capacity(0)` turns it off. What it saves is measured in `benches/STORES.md`.
//!
//! ## Offline guessing of recovery and mailed codes
//!
//! Someone who reads the table (a backup, a replica, a leaked dump) gets every stored digest
//! and its salt. Whether they can then test guesses offline, at GPU speed and without the
//! throttle, depends on the server-side [`CodeKey`](crate::account::CodeKey):
//!
//! - **With a code key** (recommended; [`TwoFactorBuilder::code_key`](crate::service::TwoFactorBuilder::code_key),
//!   or [`Keyring::service_keys`](crate::seal::Keyring::service_keys) to derive it from the
//!   sealing key): recovery and mailed codes are stored as `HMAC-SHA-256(key, label || 0 || salt ||
//!   code)`. The table alone cannot test a single guess: the attacker would first have to find
//!   a 256-bit key (2^256 work). Only the server, holding the key, can check a code, and it
//!   checks at most 5 per user per hour.
//! - **Without a code key**: salted SHA-256, as in 0.1.0. One SHA-256 per guess tests a guess
//!   against every code of a set (one salt per set). At 10^10 SHA-256 per second per GPU (a
//!   current high-end card does 1-2 × 10^10 on short inputs):
//!
//! | Code | Space | Expected guesses to hit one (a set of 10: N / 11) | Time, 1 GPU, no key | With key |
//! |---|---:|---:|---:|---|
//! | recovery code (16 symbols, 80 bits) | 2^80 ≈ 1.2 × 10^24 | ≈ 1.1 × 10^23 | ≈ 350,000 years | impossible offline |
//! | legacy recovery code (10 symbols, 50 bits, 0.1.0 sets) | 2^50 ≈ 1.1 × 10^15 | ≈ 1.0 × 10^14 | ≈ 3 hours (≈ 1 day for all 10) | legacy sets are unkeyed: regenerate |
//! | mailed code (6 digits, one code) | 10^6 | 5 × 10^5 | ≈ 50 µs | impossible offline |
//!
//! So a new recovery set is out of reach of offline guessing even without a key (a million
//! GPUs would still need about four months); the key makes it impossible rather than expensive.
//! A mailed code without a key falls as soon as its digest is read: it is only useful while it
//! is valid (one hour by default) and only together with the password, but a live replica
//! gives exactly that. **If your policy mails codes, configure a code key.** A service with a
//! mailer does not build until you choose how mailed codes are stored: keys
//! ([`TwoFactorBuilder::keys`](crate::service::TwoFactorBuilder::keys), which derive the code
//! key from one server secret), a code key, a sealing keyring, or the named opt-out
//! [`unkeyed_mailed_codes_dangerous`](crate::service::TwoFactorBuilder::unkeyed_mailed_codes_dangerous)
//! (the 0.1.0 behaviour: every server needs the same key, which the library cannot invent).
//! Unkeyed, the stored scheme says `sha256`, so an audit of the table shows it.
//!
//! A slow hash (Argon2, scrypt) was not chosen: it cannot save a 6-digit code (10^6 guesses
//! × 100 ms is a day on one core, minutes on a cluster), it would cost the server CPU on every
//! online attempt, and the key already removes offline guessing at the cost of one HMAC.
//!
//! Sets generated by 0.1.0 keep working (10-symbol codes, salted SHA-256) until the user
//! regenerates them; after that, the new set uses the current key. Each stored set and mailed
//! code records its scheme (`{"alg": "sha256"}` or `{"alg": "hmac_sha256", "key_id": ...}`).
//! The key id is an HMAC of a fixed label under the key: it names the key without revealing it.
//!
//! **Rotation.** Make the new key current and keep the old one with
//! [`old_code_key`](crate::service::TwoFactorBuilder::old_code_key): sets hashed under it keep
//! working, new sets and mailed codes use the new key. Mailed codes expire within the hour;
//! recovery sets last until regenerated, so keep the old key until your users have regenerated
//! (or ask them to). A record hashed under a key the service does not hold is never read as a
//! wrong code: the check fails closed with [`Error::UnknownCodeKey`](crate::service::Error::UnknownCodeKey)
//! before an attempt is counted, and TOTP logins of that user are unaffected.
//!
//! Trusted-device tokens need no key: they are 256 random bits, stored as SHA-256. Testing a
//! guess offline means guessing 256 bits.
//!
//! **Constant time.** Every code check compares against every stored digest with `subtle`
//! and selects the outcome without branching on which digest matched; for recovery codes the
//! used flag is folded into the match, so a used code is the same miss as a code that never
//! existed, at the same cost, and is refused the same way all along the call (see
//! [what the audit trail sees](#what-the-caller-sees-and-what-the-audit-trail-sees)).
//! `benches/dudect.rs` measures it at two depths: the record's inner check, and the whole
//! [`TwoFactor::finish_login`](crate::TwoFactor::finish_login) a host calls (dudect-style:
//! classes interleaved at random, Welch's t-test with percentile crops, a calibration row
//! that must show an artificial 1-2 ns difference, an A/A control that must not show
//! anything); `benches/DUDECT.md` holds the recorded runs.
