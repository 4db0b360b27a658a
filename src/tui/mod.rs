//! The full-screen console. One `select!` loop takes terminal events, messages from
//! the store worker and ticks; it draws only when something changed, at most once
//! per frame interval, so an idle console costs nothing.

pub mod agents;
pub mod app;
pub mod choice;
pub mod clipboard;
pub mod details;
pub mod flash;
pub mod form;
pub mod freshness;
pub mod input;
pub mod keys;
mod keys_table;
pub mod list;
pub mod logs;
pub mod overlay;
pub mod responder;
pub mod signin;
pub mod speech;
pub mod theme;
pub mod view;
pub mod voice;
pub mod widget_form;
pub mod worker;

use crate::config::Loaded;
use crate::context::{Context, Overrides};
use crate::model::LogLine;
use crate::model::now_millis;
use app::{App, HeaderInfo};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::Stdout;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use worker::Command;

/// At most this often a frame is drawn, however fast events arrive.
const FRAME: Duration = Duration::from_millis(16);
/// A timer that has nothing to do: far enough away never to fire in practice.
const IDLE: Duration = Duration::from_secs(3600);

pub async fn run(loaded: Loaded, overrides: &Overrides) -> anyhow::Result<()> {
    let ctx = Context::open(loaded, overrides).await?;
    let cfg = &ctx.loaded.config;
    let header = HeaderInfo {
        tenant: ctx.channels.tenant().name.clone(),
        database: format!(
            "{} {}",
            ctx.channels.store().backend().name(),
            short_location(&ctx.channels.store().describe())
        ),
        operator: ctx.channels.operator().name.clone(),
        role: ctx.channels.operator().role,
    };
    let mut app = App::new(
        header,
        theme::Theme::from_env(),
        cfg.meta.configured(),
        (cfg.logs.ring_lines as usize, cfg.logs.ring_bytes as usize),
    );
    app.mouse = cfg.ui.mouse;
    app.confirm_stop = cfg.ui.confirm_stop;
    if cfg.meta.configured() {
        app.meta_app = Some(crate::connectors::meta::signin::App::from_config(&cfg.meta));
    }
    app.export_dir = ctx.loaded.data_dir.join("exported-logs");
    let tick = Duration::from_millis(cfg.ui.tick_ms.max(50));
    // Holding a sender keeps the bus open for as long as the loop reads it.
    let bus = ctx.channels.bus().clone();
    let log_lines = bus.subscribe();
    let ctx_url = ctx.loaded.database_url.clone();
    let ctx_warnings = ctx.warnings.clone();
    app.tenant_id = ctx.channels.tenant().id;
    let channels = Arc::new(ctx.channels);
    // The list is asked for before the runtime starts: the first page then gets the
    // pool's idle connection instead of waiting behind the runtime's first statements.
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (msg_tx, msg_rx) = mpsc::unbounded_channel();
    tokio::spawn(worker::run(channels.clone(), cmd_rx, msg_tx));
    let _ = cmd_tx.send(Command::FirstLoad { page: 200 });
    let mode = match crate::runtime::RunChannels::parse(&cfg.runtime.run_channels) {
        _ if !channels.operator().can_edit() => crate::runtime::RunChannels::Never,
        Ok(m) => m,
        Err(e) => anyhow::bail!("{e}"),
    };
    // On screen before the change feed and the runtime start (a connection of their
    // own, the process's registration, the first look around): the first page of the
    // list is drawn as soon as it arrives instead of after them.
    let mut terminal = TerminalGuard::enter(app.mouse)?;
    terminal.terminal.draw(|f| view::draw(f, &mut app))?;
    let mut msg_rx = msg_rx;
    let starting = async {
        let feed = crate::store::feed::ChangeFeed::start(&ctx_url).await;
        let host =
            crate::runtime::host::Host::start(channels.clone(), cfg, "console", mode, feed.clone())
                .await;
        (feed, host)
    };
    tokio::pin!(starting);
    let (feed, host) = loop {
        tokio::select! {
            started = &mut starting => break started,
            Some(msg) = msg_rx.recv() => {
                app.on_msg(msg);
                terminal.terminal.draw(|f| view::draw(f, &mut app))?;
            }
        }
    };
    app.running_here = host.runtime.running_counter();
    app.webhook_base = host
        .ingress
        .as_ref()
        .map(|i| i.public_base.clone())
        .unwrap_or_else(|| cfg.http.public_base(None));
    if let Some(problem) = &host.ingress_problem {
        app.flash(problem.clone(), app::FlashKind::Error);
    } else if !ctx_warnings.is_empty() {
        app.flash(ctx_warnings.join(" · "), app::FlashKind::Warn);
    }

    let presence = host.runtime.presence();
    let result = event_loop(
        &mut terminal,
        &mut app,
        cmd_tx,
        msg_rx,
        log_lines,
        tick,
        Watches {
            presence,
            changes: feed.map(|f| f.subscribe()),
        },
    )
    .await;
    drop(terminal);
    let n = host.runtime.running_here();
    if n > 0 {
        // Not eprintln!: after a hangup the terminal is gone, and it would panic.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "flametree: stopping {n} running channel(s)…"
        );
    }
    host.shutdown().await;
    drop(bus);
    result
}

/// Wakes the event loop when a frame held back by the frame limit is due, from a
/// thread of its own: tokio's timers are driven by its worker threads, and while one is
/// busy for a long stretch (reading and decoding 100,000 connections) they fired up to
/// half a second late on the benchmark machine, so the first page's frame waited for
/// the whole list.
struct Pacer {
    ask: std::sync::mpsc::Sender<Instant>,
    due: mpsc::UnboundedReceiver<()>,
    /// A wake-up is on its way.
    asked: bool,
}

impl Pacer {
    fn start() -> Pacer {
        let (ask, asked) = std::sync::mpsc::channel::<Instant>();
        let (tx, due) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            while let Ok(at) = asked.recv() {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
        Pacer {
            ask,
            due,
            asked: false,
        }
    }

    fn wake_at(&mut self, at: Instant) {
        self.asked = self.ask.send(at).is_ok();
    }
}

/// The runtime's next look at the processes; `None` once the runtime is gone.
async fn next_presence(
    presence: &mut Option<tokio::sync::watch::Receiver<crate::runtime::Presence>>,
) -> Option<crate::runtime::Presence> {
    match presence {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// What tells the console about changes made elsewhere.
struct Watches {
    presence: tokio::sync::watch::Receiver<crate::runtime::Presence>,
    changes: Option<broadcast::Receiver<crate::store::feed::Change>>,
}

async fn event_loop(
    term: &mut TerminalGuard,
    app: &mut App,
    commands: mpsc::UnboundedSender<Command>,
    mut messages: mpsc::UnboundedReceiver<worker::Msg>,
    mut log_lines: broadcast::Receiver<LogLine>,
    tick: Duration,
    watches: Watches,
) -> anyhow::Result<()> {
    let Watches {
        presence,
        mut changes,
    } = watches;
    app.fresh.live = changes.is_some();
    let mut events = EventStream::new();
    let terminated = crate::cli::wait_for_signal();
    tokio::pin!(terminated);
    let hung_up = crate::cli::wait_for_hangup();
    tokio::pin!(hung_up);
    let mut presence = Some(presence);
    // The runtime may have looked around already, before this receiver existed.
    if let Some(rx) = &mut presence {
        let first = rx.borrow_and_update().clone();
        if first != crate::runtime::Presence::default() {
            app.on_presence(first);
        }
    }
    let mut next_tick = tokio::time::Instant::now() + tick;
    let mut last_frame = Instant::now() - FRAME;
    let mut pacer = Pacer::start();
    let mut mouse_on = app.mouse;
    app.fresh.last_poll = now_millis();
    loop {
        if app.dirty && last_frame.elapsed() >= FRAME {
            term.terminal.draw(|f| view::draw(f, app))?;
            app.dirty = false;
            last_frame = Instant::now();
        }
        if app.dirty && !pacer.asked {
            pacer.wake_at(last_frame + FRAME);
        }
        // Without work for the tick, an idle console is not woken at all.
        let tick_due = if app.needs_tick() {
            next_tick
        } else {
            tokio::time::Instant::now() + IDLE
        };
        let out = tokio::select! {
            // The clock (busy notices, export names) moves with events, not with a tick.
            ev = events.next() => {
                app.now = now_millis();
                match ev {
                    Some(Ok(Event::Key(k))) => app.on_key(k),
                    Some(Ok(Event::Mouse(m))) => app.on_mouse(m),
                    Some(Ok(Event::Paste(text))) => { app.on_paste(&text); Vec::new() }
                    Some(Ok(Event::Resize(..))) => { app.dirty = true; Vec::new() }
                    Some(Ok(_)) => Vec::new(),
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(()),
                }
            }
            Some(msg) = messages.recv() => {
                app.now = now_millis();
                app.on_msg(msg)
            }
            line = log_lines.recv() => {
                if let Err(broadcast::error::RecvError::Lagged(_)) = line {
                    app.on_log_lag(now_millis())
                } else {
                    // Take what has piled up since the last frame in one go.
                    let mut batch: Vec<LogLine> = line.into_iter().collect();
                    let mut lagged = false;
                    while batch.len() < 8192 {
                        match log_lines.try_recv() {
                            Ok(l) => batch.push(l),
                            Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                            Err(_) => break,
                        }
                    }
                    app.on_log_lines(&batch);
                    if lagged { app.on_log_lag(now_millis()) } else { Vec::new() }
                }
            }
            change = crate::store::feed::next(&mut changes) => match change {
                Some(c) => app.on_change(c, app.tenant_id),
                None => { changes = None; app.fresh.live = false; Vec::new() }
            },
            seen = next_presence(&mut presence) => match seen {
                Some(p) => { app.on_presence(p); Vec::new() }
                None => { presence = None; Vec::new() }
            },
            _ = tokio::time::sleep_until(tick_due) => {
                next_tick = tokio::time::Instant::now() + tick;
                app.on_tick(now_millis(), tick.as_millis() as i64)
            }
            Some(()) = pacer.due.recv() => { pacer.asked = false; Vec::new() }
            // SIGTERM: stop cleanly without asking, as `flametree serve` does.
            _ = &mut terminated => { app.quit = true; Vec::new() }
            // The terminal is gone: nothing more to draw, but the channels stop cleanly.
            _ = &mut hung_up => return Ok(()),
        };
        for cmd in out {
            let _ = commands.send(cmd);
        }
        if app.quit {
            return Ok(());
        }
        if let Some(text) = app.clipboard.take() {
            term.copy(&text)?;
        }
        if app.mouse != mouse_on {
            mouse_on = app.mouse;
            term.set_mouse(mouse_on)?;
        }
    }
}

/// The file name part of a long database location, so the header stays readable.
fn short_location(described: &str) -> String {
    let no_query = described.split('?').next().unwrap_or(described);
    if no_query.starts_with("sqlite:") {
        no_query.rsplit('/').next().unwrap_or(no_query).to_string()
    } else {
        no_query
            .split('@')
            .next_back()
            .unwrap_or(no_query)
            .to_string()
    }
}

/// Raw mode and the alternate screen, undone on drop and on panic, so a crash never
/// leaves the operator's SSH session in a broken terminal.
struct TerminalGuard {
    /// Never dropped: ratatui's drop shows the cursor (`restore_terminal` does that) and,
    /// when the terminal is gone (a hangup), reports it with `eprintln!`, which panics on
    /// the dead terminal, so the console died before stopping its channels. Its buffers
    /// are left to the process's exit.
    terminal: std::mem::ManuallyDrop<Terminal<CrosstermBackend<Stdout>>>,
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl TerminalGuard {
    fn enter(mouse: bool) -> anyhow::Result<TerminalGuard> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        enable_raw_mode()?;
        let mut stdout = std::io::stdout();
        execute!(stdout, EnterAlternateScreen, EnableBracketedPaste)?;
        if mouse {
            execute!(stdout, EnableMouseCapture)?;
        }
        let terminal = Terminal::new(CrosstermBackend::new(stdout))?;
        Ok(TerminalGuard {
            terminal: std::mem::ManuallyDrop::new(terminal),
        })
    }

    /// Puts `text` on the clipboard through the terminal (OSC 52).
    fn copy(&mut self, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let out = self.terminal.backend_mut();
        out.write_all(clipboard::osc52(text).as_bytes())?;
        out.flush()?;
        Ok(())
    }

    fn set_mouse(&mut self, on: bool) -> anyhow::Result<()> {
        if on {
            execute!(std::io::stdout(), EnableMouseCapture)?;
        } else {
            execute!(std::io::stdout(), DisableMouseCapture)?;
        }
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}
