#!/usr/bin/python3
# a11y-sign-in.py: signs in to the console the way a screen reader user
# would, through AT-SPI only, and checks what such a user meets on the
# way.  Prints TAP.  Started by a11y-sign-in.sh, which provides the
# accessibility bus, a relay with one user and the console itself.
#
# Environment (from a11y-sign-in.sh):
#   FIELDLINE_A11Y_PID       the console's process id
#   FIELDLINE_A11Y_USER      the relay user, and
#   FIELDLINE_A11Y_PASSWORD  its password
#   FIELDLINE_A11Y_DEADLINE  seconds the whole run may take (default 85)
#
# What GTK 4.8 exposes, and how this script copes:
#   - No SHOWING state except on windows (every widget is VISIBLE), and
#     every page of every GtkStack stays in the tree.  So "showing" is
#     worked out here: an object shows when it and all its ancestors have
#     a non-empty area inside the window (window-relative extents; a
#     widget that was never allocated has an empty one) and, for each
#     GtkStack page on the way up, that page may be its stack's visible
#     one.  A stack's visible page is known when the keyboard focus is in
#     one of its pages (GtkStack moves the focus into the page it shows);
#     otherwise every page with an area counts, which may include a page
#     shown earlier (GTK keeps its old allocation): for the naming checks
#     that errs on the strict side.
#   - A GtkStack page is an object of role panel without a Component
#     interface.
#   - An object without a name gets its GType name as its AT-SPI name
#     ("GtkImage", "GtkToggleButton"): a screen reader reads that out, so
#     such a name counts as no name.
#   - No screen coordinates; a button activated a second time within
#     ~250 ms ignores it (activations here are at least 300 ms apart).
#   - libatspi caches names and states and, without an event loop here,
#     never hears that they changed: the cache is cleared before each look.
#   - Text.getText(0, -1) gives "": read characterCount characters.

import os
import re
import sys
import time
import traceback

import gi

gi.require_version('Atspi', '2.0')
from gi.repository import Atspi  # noqa: E402
import pyatspi  # noqa: E402

# ---- what the console shows (ui/*.ui, src/console/fl-sign-in-page.c) ----

# the AT-SPI name of the console's application (g_get_prgname)
APP_NAME = 'fieldline'
# ui/fl-sign-in-page.ui: username_row, password_row ("_Username",
# "_Password") and sign_in_button
USERNAME_NAME = 'Username'
PASSWORD_NAME = 'Password'
SIGN_IN_NAME = 'Sign In'
# src/console/fl-sign-in-page.c, show_failure (): FL_COGNITO_ERROR_NOT_AUTHORIZED
WRONG_PASSWORD_ERROR = 'Incorrect username or password.'
# ui/fl-devices-page.ui: search_entry's accessible label
DEVICE_SEARCH_NAME = 'Search devices'

WRONG_PASSWORD = 'Not-The-Password-7'

# ---- timing ----

APP_TIMEOUT = 20.0        # the application in the registry
FORM_TIMEOUT = 20.0       # the sign-in form populated
ERROR_TIMEOUT = 15.0      # the inline error after a wrong password
SIGNED_IN_TIMEOUT = 20.0  # the devices view after the right one
SETTLE_TIMEOUT = 5.0      # the tree stops changing
POLL = 0.2
ACTIVATION_GAP = 0.3      # GTK 4.8 ignores a second activation within ~250 ms

DEADLINE = time.monotonic() + float(os.environ.get('FIELDLINE_A11Y_DEADLINE', '85'))

# ---- roles ----

R = pyatspi
TEXT_ROLES = {R.ROLE_TEXT, R.ROLE_ENTRY}
INTERACTIVE_ROLES = {
    R.ROLE_PUSH_BUTTON, R.ROLE_TOGGLE_BUTTON, R.ROLE_CHECK_BOX, R.ROLE_RADIO_BUTTON,
    R.ROLE_TEXT, R.ROLE_ENTRY, R.ROLE_PASSWORD_TEXT, R.ROLE_COMBO_BOX, R.ROLE_LINK,
    R.ROLE_SPIN_BUTTON,
}
for _extra in ('ROLE_SWITCH', 'ROLE_PUSH_BUTTON_MENU'):
    if hasattr(R, _extra):
        INTERACTIVE_ROLES.add(getattr(R, _extra))
WINDOW_ROLES = {R.ROLE_FRAME, R.ROLE_WINDOW, R.ROLE_DIALOG}

# GTK 4.8's stand-in for a missing name: the widget's type name
TYPE_NAME_FALLBACK = re.compile(r'^(?:Gtk|Adw|Gdk|Fl)[A-Z][A-Za-z0-9]*$')

MAX_NODES = 20000
MAX_DEPTH = 100


def remaining(timeout):
    """seconds left for a wait of timeout, within the run's deadline"""
    return max(0.0, min(timeout, DEADLINE - time.monotonic()))


# ---- TAP ----------------------------------------------------------------

class Tap:
    def __init__(self, descriptions):
        self.descriptions = descriptions
        self.n = 0
        self.failed = 0
        print(f'1..{len(descriptions)}', flush=True)

    def result(self, ok, detail='', diagnostics=()):
        desc = self.descriptions[self.n]
        self.n += 1
        line = f"{'ok' if ok else 'not ok'} {self.n} - {desc}"
        if detail:
            line += f': {detail}'
        print(line, flush=True)
        diag(diagnostics)
        if not ok:
            self.failed += 1
        return ok

    def not_run(self, reason):
        while self.n < len(self.descriptions):
            self.result(False, f'not run: {reason}')


def diag(lines):
    if isinstance(lines, str):
        lines = [lines]
    for line in lines:
        for part in str(line).splitlines() or ['']:
            print(f'# {part}', flush=True)


# ---- the accessible tree ------------------------------------------------

def attempt(f, default=None):
    try:
        return f()
    except Exception:
        return default


class Node:
    """One object of a snapshot of the tree."""

    __slots__ = ('acc', 'parent', 'index', 'depth', 'role', 'role_name', 'name',
                 'states', 'ext', 'has_component', 'is_page', 'children', 'pruned')

    def __init__(self, acc, parent, index):
        self.acc = acc
        self.parent = parent
        self.index = index
        self.depth = 0 if parent is None else parent.depth + 1
        self.children = []
        self.pruned = False
        self.role = acc.getRole()
        self.role_name = attempt(acc.getRoleName, '?')
        self.name = attempt(lambda: acc.name, '') or ''
        self.states = set(attempt(lambda: acc.getState().getStates(), []))
        ifaces = attempt(acc.get_interfaces, []) or []
        self.has_component = 'Component' in ifaces
        self.ext = None
        if self.has_component:
            e = attempt(lambda: acc.queryComponent().getExtents(pyatspi.WINDOW_COORDS))
            if e is not None:
                self.ext = (e.x, e.y, e.width, e.height)
        # GTK 4.8: the object of a GtkStack page implements Accessible only
        self.is_page = self.role == R.ROLE_PANEL and not self.has_component

    # -- names --
    def real_name(self):
        """the name a screen reader would read, or None"""
        name = self.name.strip()
        if not name or TYPE_NAME_FALLBACK.match(name):
            return None
        return name

    def describe(self):
        s = f"{self.role_name} '{self.name}'"
        if self.name and TYPE_NAME_FALLBACK.match(self.name.strip()):
            s = f"{self.role_name} (no name; GTK's type-name stand-in '{self.name}')"
        elif not self.name.strip():
            s = f'{self.role_name} (no name)'
        d = attempt(lambda: self.acc.description, '') or ''
        if d:
            s += f", description '{d}'"
        return s

    def path(self):
        indices = []
        n = self
        while n is not None and n.parent is not None:
            indices.append(str(n.index))
            n = n.parent
        return '/' + '/'.join(reversed(indices))

    def context(self, count=3):
        """the nearest ancestors that have real names"""
        names = []
        n = self.parent
        while n is not None and len(names) < count:
            if n.real_name() and n.role not in WINDOW_ROLES | {R.ROLE_APPLICATION}:
                names.append(f"{n.role_name} '{n.real_name()}'")
            n = n.parent
        return ' < '.join(names) if names else 'the window'

    def ancestors(self):
        n = self.parent
        while n is not None:
            yield n
            n = n.parent

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def text(self):
        """its Text interface's contents, or None"""
        def read():
            t = self.acc.queryText()
            return t.getText(0, t.characterCount)
        return attempt(read)


def area(ext):
    return ext is not None and ext[2] > 0 and ext[3] > 0


class Snapshot:
    """The whole tree of a window at one moment, and what of it shows."""

    def __init__(self, app, window_acc, prune=True):
        self.count = 0
        app.clear_cache()
        self.window = self._build(window_acc, None, 0, prune)
        wx, wy, ww, wh = self.window.ext if self.window.ext else (0, 0, 0, 0)
        self.window_box = (0, 0, ww, wh)
        self.focus = None
        for n in self.window.walk():
            if R.STATE_FOCUSED in n.states and n is not self.window:
                self.focus = n
        self._showing = {}

    def _build(self, acc, parent, index, prune):
        node = Node(acc, parent, index)
        self.count += 1
        # Nothing inside an object of no area shows: skip it (speed).
        if prune and node.has_component and not area(node.ext) and parent is not None:
            node.pruned = True
            return node
        if node.depth >= MAX_DEPTH:
            return node
        n = attempt(lambda: acc.childCount, 0) or 0
        for i in range(n):
            if self.count >= MAX_NODES:
                break
            child = attempt(lambda: acc.getChildAtIndex(i))
            if child is None:
                continue
            try:
                node.children.append(self._build(child, node, i, prune))
            except Exception:
                # gone while we looked: not there
                continue
        return node

    def in_window(self, ext):
        if not area(ext):
            return False
        x, y, w, h = ext
        _, _, ww, wh = self.window_box
        return x < ww and y < wh and x + w > 0 and y + h > 0

    def page_may_show(self, page):
        stack = page.parent
        if stack is None:
            return True
        if self.focus is not None:
            for a in [self.focus] + list(self.focus.ancestors()):
                if a.parent is stack and a.is_page:
                    return a is page
        return True

    def showing(self, node):
        key = id(node)
        if key not in self._showing:
            self._showing[key] = self._compute_showing(node)
        return self._showing[key]

    def _compute_showing(self, node):
        if node is self.window:
            return True
        if not node.has_component or not self.in_window(node.ext):
            return False
        for a in node.ancestors():
            if a is self.window:
                return True
            if a.is_page:
                if not self.page_may_show(a):
                    return False
            elif a.has_component and not area(a.ext):
                return False
        return True

    def find(self, roles, name, scope=None, showing=True):
        scope = scope or self.window
        return [n for n in scope.walk()
                if n.role in roles and n.name == name and (not showing or self.showing(n))]

    def find_acc(self, acc):
        for n in self.window.walk():
            if n.acc == acc:
                return n
        return None

    def main_page(self, node):
        """the outermost stack page node is in (a page of the window's
        main stack), or the window"""
        page = None
        for a in node.ancestors():
            if a.is_page:
                page = a
        return page or self.window

    def unnamed_controls(self, scope):
        return [n for n in scope.walk()
                if n.role in INTERACTIVE_ROLES and self.showing(n) and n.real_name() is None]

    def interactive_signature(self, scope=None):
        scope = scope or self.window
        return tuple((n.path(), n.role, n.name, n.ext) for n in scope.walk()
                     if n.role in INTERACTIVE_ROLES and self.showing(n))

    def dump(self, scope=None, only_showing=True, limit=120):
        scope = scope or self.window
        lines = []
        for n in scope.walk():
            if only_showing and not self.showing(n) and not n.is_page:
                continue
            if len(lines) >= limit:
                lines.append('  ... (more)')
                break
            states = ','.join(sorted(s.value_nick for s in n.states
                                     if s in (R.STATE_FOCUSED, R.STATE_SENSITIVE,
                                              R.STATE_FOCUSABLE, R.STATE_EDITABLE)))
            where = f' {n.ext}' if n.ext else ''
            lines.append(f"{'  ' * (n.depth - scope.depth)}{n.role_name} '{n.name}'{where} [{states}]")
        return lines


# ---- finding the console -------------------------------------------------

def find_app(desktop, pid):
    seen = []
    for i in range(attempt(lambda: desktop.childCount, 0) or 0):
        app = attempt(lambda: desktop.getChildAtIndex(i))
        if app is None:
            continue
        name = attempt(lambda: app.name, '?')
        app_pid = attempt(app.get_process_id, -1)
        seen.append(f"'{name}' (pid {app_pid})")
        if (pid is not None and app_pid == pid) or (pid is None and name == APP_NAME):
            return app, seen
    return None, seen


def find_window(app):
    windows = []
    for i in range(attempt(lambda: app.childCount, 0) or 0):
        w = attempt(lambda: app.getChildAtIndex(i))
        if w is not None and attempt(w.getRole) in WINDOW_ROLES:
            windows.append(w)
    for w in windows:
        if R.STATE_ACTIVE in set(attempt(lambda: w.getState().getStates(), [])):
            return w
    return windows[0] if windows else None


def wait_for(what, timeout):
    """polls what() until it returns something true; returns the last value"""
    end = time.monotonic() + remaining(timeout)
    while True:
        value = what()
        if value or time.monotonic() >= end:
            return value
        time.sleep(POLL)


# ---- acting like a user ---------------------------------------------------

_last_activation = [0.0]


def activate(node):
    """does the node's click action; at least ACTIVATION_GAP after the last"""
    wait = _last_activation[0] + ACTIVATION_GAP - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    action = node.acc.queryAction()
    names = [attempt(lambda: action.getName(i), '') for i in range(action.nActions)]
    index = 0
    for wanted in ('click', 'activate', 'press'):
        if wanted in names:
            index = names.index(wanted)
            break
    done = action.doAction(index)
    _last_activation[0] = time.monotonic()
    return done, names[index] if names else '(none)'


def set_text(node, text):
    ok = node.acc.queryEditableText().setTextContents(text)
    return ok, node.text()


# ---- the run ------------------------------------------------------------

CHECKS = [
    "the console's application is in the AT-SPI registry",
    'every showing control of the sign-in page has an accessible name',
    'the username and password fields are found by role and name',
    'a wrong password shows an inline error in the accessible tree',
    'the right password opens the devices view and hides the sign-in form',
    'every showing control of the signed-in view has an accessible name',
]


def unnamed_report(snap, scope, what):
    unnamed = snap.unnamed_controls(scope)
    controls = [n for n in scope.walk() if n.role in INTERACTIVE_ROLES and snap.showing(n)]
    total = len(controls)
    checked = ['checked: ' + ', '.join(f"{n.role_name} '{n.name}'" for n in controls),
               'keyboard focus: ' + (snap.focus.describe() if snap.focus else 'nowhere')]
    if not unnamed:
        return True, f'{total} showing controls, all named', checked
    lines = checked + [f'{len(unnamed)} of the {total} showing controls of {what} have no accessible name:']
    for n in unnamed:
        lines.append(f'  {n.describe()}')
        lines.append(f'    path {n.path()} (from the window), inside {n.context()}')
    return False, f'{len(unnamed)} unnamed', lines


def settle(app, window, scope_of, timeout=SETTLE_TIMEOUT):
    """a snapshot taken once two in a row show the same controls"""
    end = time.monotonic() + remaining(timeout)
    snap = Snapshot(app, window)
    sig = snap.interactive_signature(scope_of(snap))
    while time.monotonic() < end:
        time.sleep(0.4)
        nxt = Snapshot(app, window)
        nsig = nxt.interactive_signature(scope_of(nxt))
        snap = nxt
        if nsig == sig:
            break
        sig = nsig
    return snap


def run(tap):
    pid_env = os.environ.get('FIELDLINE_A11Y_PID')
    pid = int(pid_env) if pid_env else None
    user = os.environ.get('FIELDLINE_A11Y_USER', 'a11y-tester')
    password = os.environ.get('FIELDLINE_A11Y_PASSWORD', '')
    if not password:
        tap.not_run('FIELDLINE_A11Y_PASSWORD is not set')
        return

    desktop = pyatspi.Registry.getDesktop(0)

    # ---- 1: the application in the registry ----
    looked = {}

    def app_registered():
        app, looked['seen'] = find_app(desktop, pid)
        return app

    app = wait_for(app_registered, APP_TIMEOUT)
    seen = looked.get('seen', [])
    if app is None:
        tap.result(False, f'not there after {APP_TIMEOUT:.0f} s',
                   [f'looked for pid {pid} / name {APP_NAME!r}; the registry has: ' +
                    (', '.join(seen) or 'nothing'),
                    f"AT_SPI_BUS_ADDRESS={os.environ.get('AT_SPI_BUS_ADDRESS', '')}"])
        tap.not_run('no application')
        return
    app.set_cache_mask(Atspi.Cache.NONE)
    tap.result(True, f"'{attempt(lambda: app.name, '?')}', pid {attempt(app.get_process_id, '?')}, "
               f"toolkit {attempt(app.get_toolkit_name, '?')} {attempt(app.get_toolkit_version, '?')}")

    # ---- the sign-in form, once the tree is populated ----
    state = {}

    def form_ready():
        window = find_window(app)
        if window is None:
            return None
        snap = Snapshot(app, window)
        state['window'] = window
        users = snap.find(TEXT_ROLES, USERNAME_NAME)
        passwords = (snap.find({R.ROLE_PASSWORD_TEXT}, PASSWORD_NAME) +
                     snap.find(TEXT_ROLES, PASSWORD_NAME))
        buttons = snap.find({R.ROLE_PUSH_BUTTON}, SIGN_IN_NAME)
        return snap if users and passwords and buttons else None

    form = wait_for(form_ready, FORM_TIMEOUT)
    window = state.get('window')
    if window is None:
        tap.result(False, f'the application has no window after {FORM_TIMEOUT:.0f} s')
        tap.not_run('no window')
        return

    # ---- 2: names on the sign-in page ----
    # The page is the main stack's page that holds the form; if the form
    # never showed up, whatever the window shows (check 3 says what is
    # missing).
    anchor = None
    if form is not None:
        anchor = form.find(TEXT_ROLES, USERNAME_NAME)[0].acc

    def sign_in_scope(s):
        n = s.find_acc(anchor) if anchor is not None else None
        return s.main_page(n) if n is not None else s.window

    snap = settle(app, window, sign_in_scope)
    page = sign_in_scope(snap)
    ok, detail, lines = unnamed_report(snap, page, 'the sign-in page')
    tap.result(ok, detail, lines)

    # ---- 3: the fields, by role and name ----
    users = snap.find(TEXT_ROLES, USERNAME_NAME, scope=page)
    pw_proper = snap.find({R.ROLE_PASSWORD_TEXT}, PASSWORD_NAME, scope=page)
    pw_plain = snap.find(TEXT_ROLES, PASSWORD_NAME, scope=page)
    buttons = snap.find({R.ROLE_PUSH_BUTTON}, SIGN_IN_NAME, scope=page)
    problems = []
    if len(users) != 1:
        problems.append(f'{len(users)} showing text fields named {USERNAME_NAME!r} (want 1)')
    if len(pw_proper) + len(pw_plain) != 1:
        problems.append(f'{len(pw_proper) + len(pw_plain)} showing password fields named '
                        f'{PASSWORD_NAME!r} (want 1)')
    if len(buttons) != 1:
        problems.append(f'{len(buttons)} showing push buttons named {SIGN_IN_NAME!r} (want 1)')
    if problems:
        fields = [f"  {n.describe()} at {n.path()}" for n in page.walk()
                  if n.role in TEXT_ROLES | {R.ROLE_PASSWORD_TEXT, R.ROLE_PUSH_BUTTON}
                  and snap.showing(n)]
        tap.result(False, '; '.join(problems),
                   ['showing text fields and push buttons:'] + (fields or ['  none']) +
                   ['the window:' if page is snap.window else 'the sign-in page:'] + snap.dump(page))
        tap.not_run('the form is not as expected')
        return
    user_node = users[0]
    pw_node = (pw_proper + pw_plain)[0]
    button_node = buttons[0]
    if pw_proper:
        how = f"password field has role 'password text', name {PASSWORD_NAME!r}"
        notes = []
    else:
        how = (f"password field has role '{pw_node.role_name}' (not 'password text') "
               f"and name {PASSWORD_NAME!r}")
        notes = ["GTK 4.8 gives the 'password text' role to GtkPasswordEntry only; an "
                 "AdwPasswordEntryRow is a plain text field to AT-SPI"]
    tap.result(True, f"username field '{user_node.role_name}' {USERNAME_NAME!r}; {how}", notes)

    # ---- 4: a wrong password ----
    okay, text = set_text(user_node, user)
    if not okay or text != user:
        tap.result(False, 'could not type the username',
                   [f'setTextContents gave {okay}; the field now reads {text!r}'])
        tap.not_run('no username')
        return
    okay, text = set_text(pw_node, WRONG_PASSWORD)
    if not okay:
        tap.result(False, 'could not type into the password field',
                   [f'setTextContents gave {okay}'])
        tap.not_run('no password')
        return
    leak = []
    if text == WRONG_PASSWORD:
        leak = ["NOTE: the password field's AT-SPI Text holds the password in clear "
                "(role text, not password text): a screen reader may speak it and any "
                "AT-SPI client can read it"]
    done, action = activate(button_node)
    diag(f"typed the username and a wrong password; '{action}' on {SIGN_IN_NAME!r} gave {done}")

    error_state = {}

    def error_shows():
        s = Snapshot(app, window)
        error_state['snap'] = s
        scope = sign_in_scope(s)
        for n in scope.walk():
            if n.role != R.ROLE_LABEL or not s.showing(n):
                continue
            if n.name.strip() == WRONG_PASSWORD_ERROR or (n.text() or '').strip() == WRONG_PASSWORD_ERROR:
                return n
        return None

    label = wait_for(error_shows, ERROR_TIMEOUT)
    if label is None:
        s = error_state.get('snap')
        lines = [f'no showing label {WRONG_PASSWORD_ERROR!r} after {ERROR_TIMEOUT:.0f} s']
        if s is not None:
            scope = sign_in_scope(s)
            others = [f"  {n.describe()} text {n.text()!r}" for n in scope.walk()
                      if n.role in (R.ROLE_LABEL, R.ROLE_ALERT, R.ROLE_STATUS_BAR) and s.showing(n)]
            lines += ['showing labels and alerts of the sign-in page:'] + others
            lines += ['the sign-in page:'] + s.dump(scope)
        tap.result(False, 'no inline error', lines + leak)
        tap.not_run('the wrong password gave no error')
        return
    alert = next((a for a in label.ancestors() if a.role == R.ROLE_ALERT), None)
    where = f", inside alert '{alert.name}'" if alert is not None else ' (not inside an alert)'
    tap.result(True, f"label '{label.name or label.text()}'{where}", leak)

    # ---- 5: the right password ----
    def button_ready():
        s = Snapshot(app, window)
        n = s.find_acc(button_node.acc)
        return n if n is not None and R.STATE_SENSITIVE in n.states and s.showing(n) else None

    button = wait_for(button_ready, 5.0)
    if button is None:
        s = Snapshot(app, window)
        tap.result(False, f'{SIGN_IN_NAME!r} is not usable again after the error',
                   ['the sign-in page:'] + s.dump(sign_in_scope(s)))
        tap.not_run('cannot sign in')
        return
    okay, text = set_text(pw_node, password)
    if not okay:
        tap.result(False, 'could not type the password', [f'setTextContents gave {okay}'])
        tap.not_run('no password')
        return
    done, action = activate(button)
    diag(f"typed the right password; '{action}' on {SIGN_IN_NAME!r} gave {done}")

    signed_state = {}

    def signed_in():
        s = Snapshot(app, window)
        signed_state['snap'] = s
        searches = s.find({R.ROLE_ENTRY, R.ROLE_TEXT}, DEVICE_SEARCH_NAME)
        if not searches:
            return None
        pw = s.find_acc(pw_node.acc)
        if pw is not None and s.showing(pw):
            return None
        return s, searches[0], pw

    result = wait_for(signed_in, SIGNED_IN_TIMEOUT)
    if not result:
        s = signed_state.get('snap')
        lines = []
        if s is not None:
            searches = s.find({R.ROLE_ENTRY, R.ROLE_TEXT}, DEVICE_SEARCH_NAME)
            pw = s.find_acc(pw_node.acc)
            lines.append(f'device search entry {DEVICE_SEARCH_NAME!r} showing: {bool(searches)}')
            lines.append('password field: ' + ('gone from the tree' if pw is None else
                                               f'showing {s.showing(pw)}, area {pw.ext}'))
            lines.append('keyboard focus: ' + (f'{s.focus.describe()} at {s.focus.path()}'
                                              if s.focus else 'nowhere'))
            if searches and pw is not None and s.focus is None:
                lines.append('(GTK 4.8 has no SHOWING state: with nothing focused, which page '
                             'of the main stack shows cannot be told apart from one shown before)')
            errors = [f'  {n.describe()}' for n in s.window.walk()
                      if n.role == R.ROLE_LABEL and s.showing(n)
                      and any(a.role == R.ROLE_ALERT for a in n.ancestors())]
            if errors:
                lines += ['errors showing:'] + errors
            lines += ['the window:'] + s.dump()
        tap.result(False, f'not signed in after {SIGNED_IN_TIMEOUT:.0f} s', lines)
        tap.not_run('not signed in')
        return
    s, search, pw = result
    if pw is None:
        hidden = 'the password field is gone from the tree'
    elif s.main_page(pw) is not s.main_page(search):
        hidden = (f"the password field is on another page of the main stack than the one "
                  f"showing (focus on {s.focus.describe() if s.focus else 'nothing'})")
    else:
        hidden = 'the password field no longer shows (no area, or on a hidden page)'
    tap.result(True, f"{search.role_name} {DEVICE_SEARCH_NAME!r} shows; {hidden}")

    # ---- 6: names on the signed-in view ----
    search_acc = search.acc

    def fleet_scope(snap):
        n = snap.find_acc(search_acc)
        return snap.main_page(n) if n is not None else snap.window

    snap = settle(app, window, fleet_scope)
    ok, detail, lines = unnamed_report(snap, fleet_scope(snap), 'the signed-in view')
    tap.result(ok, detail, lines)


def main():
    tap = Tap(CHECKS)
    try:
        run(tap)
    except Exception:
        if tap.n < len(CHECKS):
            tap.result(False, 'the driver failed', traceback.format_exc().splitlines())
            tap.not_run('the driver failed')
        else:
            diag(traceback.format_exc().splitlines())
            tap.failed += 1
    if time.monotonic() > DEADLINE:
        diag('the run went past its deadline')
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
