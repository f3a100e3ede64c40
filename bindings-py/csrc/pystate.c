/* The per-continuation interpreter state: every PyThreadState field that moves on a switch, in ONE
 * place, with its version condition beside it. Compiled per CPython version with Py_BUILD_CORE
 * against that version's internal headers (build.rs). The Rust side only sees the opaque
 * `tpy_state` and the functions at the end of this file.
 *
 * 3.14 note: 3.14 checks the C stack pointer against per-thread limits
 * (tstate->c_stack_soft_limit / c_stack_hard_limit / c_stack_top); a continuation runs on its own
 * tealet stack, so those three must be saved/restored here and initialised from the tealet's
 * stack bounds. Also 3.14's current_executor and the iframe stackpointer (see greenlet notes). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <string.h>
#include "stackdepth.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#endif
#include "internal/pycore_interp.h"

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x030E0000
#error "bindings-py supports CPython 3.9 to 3.13"
#endif

#define V310 (PY_VERSION_HEX >= 0x030A0000)
#define V311 (PY_VERSION_HEX >= 0x030B0000)
#define V312 (PY_VERSION_HEX >= 0x030C0000)
#define V313 (PY_VERSION_HEX >= 0x030D0000)

#if V310 && !V311
typedef CFrame _PyCFrame;                      /* 3.10 names it CFrame */
#endif

#if V313
#define TPY_C_RECURSION_LIMIT Py_C_RECURSION_LIMIT
#elif V312
#define TPY_C_RECURSION_LIMIT C_RECURSION_LIMIT
#endif

/* A continuation's own root data-stack chunk (3.11+). Small, malloc'd, previous == NULL, so
 * CPython never frees it; deeper frames make CPython push (and later free) its own chunks. */
#define TPY_ROOT_CHUNK_SIZE 1024
#define TPY_CHUNK_CACHE 1024

/* The trash can's nesting counter (<=3.12; 3.13 has none), one of the fields that move. */
#if !V312
#define TPY_TRASH_NESTING(ts) ((ts)->trash_delete_nesting)
#elif !V313
#define TPY_TRASH_NESTING(ts) ((ts)->trash.delete_nesting)
#endif

/* Where a suspended frame is, per version: the index (in code units) of the instruction it is
 * executing; whether its stack pointer was recorded (3.11+: it called a Python function inline;
 * 3.12+ mark an unrecorded one with stacktop -1, 3.11 only flags the callee as an entry frame);
 * and a frame's function (3.11+). */
#if !V310
#define TPY_LASTI_UNITS(f) ((f)->f_lasti < 0 ? -1 : (f)->f_lasti / 2)   /* 3.9: byte offset */
#elif !V311
#define TPY_LASTI_UNITS(f) ((f)->f_lasti)             /* 3.10: code units */
#elif !V313
#define TPY_LASTI_UNITS(f) _PyInterpreterFrame_LASTI(f)   /* 3.11/3.12: prev_instr */
#else
#define TPY_LASTI_UNITS(f) ((int)((f)->instr_ptr - _PyCode_CODE((PyCodeObject *)(f)->f_executable)))
#endif
#if V311 && !V312
#define TPY_STACK_RECORDED(f, above) ((above) != NULL && !(above)->is_entry)
#define TPY_FRAME_FUNC(f) ((PyObject *)(f)->f_func)
#elif V312
#define TPY_STACK_RECORDED(f, above) ((f)->stacktop >= 0)
#define TPY_FRAME_FUNC(f) ((f)->f_funcobj)
#endif

typedef struct tpy_link { void *frame; void *previous; } tpy_link;

typedef struct tpy_state {
    /* the argument vector of the `switch` call it left through (TPY_THROW_ARGS: through throw,
     * NULL: another way): in its top frame's value stack when that frame's switch call is what
     * it is suspended in */
    void *switch_args;
    /* frame chain head */
#if !V311
    PyFrameObject *frame;                      /* <=3.10: tstate->frame (borrowed by the chain) */
#elif !V313
    struct _PyInterpreterFrame *current_frame; /* 3.11/3.12: tstate->cframe->current_frame */
#else
    struct _PyInterpreterFrame *current_frame; /* 3.13: tstate->current_frame */
#endif
#if !V311
    PyObject *top_frame;                       /* <=3.10: owned frame object of the top frame (get_frame) */
#endif
#if V310 && !V313
    _PyCFrame *cframe;                         /* 3.10-3.12: points into this continuation's C stack */
    _PyCFrame root_cframe;                     /* 3.10-3.12: the one below its first eval loop */
#endif
    int py_depth;                              /* all: Python recursion depth (depth, not remaining) */
#if V312
    int c_depth;                               /* 3.12+: separate C recursion counter */
#endif
#if V311
    _PyStackChunk *datastack_chunk;            /* 3.11+: frame data stack, one per continuation */
    PyObject **datastack_top;
    PyObject **datastack_limit;
#endif
    _PyErr_StackItem *exc_info;                /* all: handled-exception stack pointer */
    _PyErr_StackItem exc_state;                /* all: incl. previous_item (owned) */
    PyObject *context;                         /* all: contextvars (owned; context_ver bumped on restore) */
#if !V313
    int trash_delete_nesting;                  /* <=3.12: TPY_TRASH_NESTING(tstate) */
#else
    PyObject *delete_later;                    /* 3.13: tstate->delete_later (refcount 0 objects, swapped) */
    uintptr_t critical_section;                /* 3.13: tstate->critical_section (0 in GIL builds) */
#endif
    void *root;                                /* all: the top frame of the continuation its continulet
                                                *   holds, which its own frames link to while it runs
                                                *   (NULL when detached, suspended or none is held) */
    void *bottom;                              /* all: its own frame that links to root (found on save) */
    int detached;                              /* all: never linked (the main one; opted out) */
#if V312
    tpy_link *links;                           /* 3.12+: original `previous` of relinked frames: */
    tpy_link link0;                            /*   &link0 while one is enough (usually: the */
    size_t nlinks, caplinks;                   /*   bottom entry frame), else a heap array */
    struct _PyInterpreterFrame *heap_head;     /* 3.12+: first frame not on the C stack */
#endif
    int tracing;                               /* all: tstate->tracing (see refresh_use_tracing) */
    int started;
} tpy_state;

/* The tracing level (tstate->tracing: above 0 while a trace or profile function runs, or a
 * hidden call, see tpy_hidden_call) moves with each continuation; a new one starts at 0. <=3.11 also
 * cache whether events are on, recomputed whenever the level or the running continuation
 * changes (a finished continuation may have set or cleared the thread's trace/profile function):
 * 3.9 per thread (tstate->use_tracing), 3.10/3.11 per C-level eval loop (cframe->use_tracing).
 * 3.12+ check the level itself before every event. */
#if !V312
#if V311
#define TPY_TRACING_ON 255
#else
#define TPY_TRACING_ON 1
#endif
static void refresh_use_tracing(PyThreadState *ts)
{
    int on = ts->tracing == 0 && (ts->c_tracefunc || ts->c_profilefunc);
#if !V310
    ts->use_tracing = on;
#else
    ts->cframe->use_tracing = on ? TPY_TRACING_ON : 0;
#endif
}
#define TPY_REFRESH_USE_TRACING(ts) refresh_use_tracing(ts)
#else
#define TPY_REFRESH_USE_TRACING(ts) ((void)(ts))
#endif

#if V311
/* Freed root chunks, reused by the next continuation (the GIL protects this list). */
static _PyStackChunk *chunk_cache;
static int chunk_cache_len;

static _PyStackChunk *root_chunk_get(void)
{
    _PyStackChunk *c = chunk_cache;
    if (c) {
        chunk_cache = c->previous;
        chunk_cache_len--;
    } else {
        c = PyMem_RawMalloc(TPY_ROOT_CHUNK_SIZE);
        if (!c) return NULL;
    }
    c->previous = NULL;
    c->size = TPY_ROOT_CHUNK_SIZE;
    c->top = 0;
    return c;
}

static void root_chunk_put(_PyStackChunk *c)
{
    if (chunk_cache_len >= TPY_CHUNK_CACHE) { PyMem_RawFree(c); return; }
    c->previous = chunk_cache;
    chunk_cache = c;
    chunk_cache_len++;
}

/* Frees a chain ending in our root chunk: CPython's chunks via the arena allocator, ours cached. */
static void free_chunks(_PyStackChunk *c)
{
    if (c && c->previous) {
        /* Only when there are: 3.12 takes a lock to read the allocator. */
        PyObjectArenaAllocator alloc;
        PyObject_GetArenaAllocator(&alloc);
        while (c->previous) {
            _PyStackChunk *prev = c->previous;
            alloc.free(alloc.ctx, c, c->size);
            c = prev;
        }
    }
    if (c) root_chunk_put(c);
}

static struct _PyInterpreterFrame **frame_head(PyThreadState *ts)
{
#if V313
    return &ts->current_frame;
#else
    return &ts->cframe->current_frame;
#endif
}
#endif

#if V312
static int links_push(tpy_state *s, void *frame, void *previous)
{
    if (!s->caplinks) {
        s->links = &s->link0;
        s->caplinks = 1;
    }
    if (s->nlinks == s->caplinks) {
        size_t cap = 2 * s->caplinks;
        tpy_link *l = PyMem_Realloc(s->links == &s->link0 ? NULL : s->links, cap * sizeof *l);
        if (!l) return -1;
        if (s->links == &s->link0) l[0] = s->link0;
        s->links = l;
        s->caplinks = cap;
    }
    s->links[s->nlinks].frame = frame;
    s->links[s->nlinks].previous = previous;
    s->nlinks++;
    return 0;
}

/* Switch-out: the chain passes through entry frames that live on this C stack, which another
 * continuation may overwrite while we are suspended. Link every heap frame straight to the next
 * heap frame so f_back, tracebacks and gc never reach them; restored on switch-in. */
static int hide_cstack_frames(tpy_state *s)
{
    s->nlinks = 0;
    struct _PyInterpreterFrame *head = s->current_frame;
    while (head && head->owner == FRAME_OWNED_BY_CSTACK) head = head->previous;
    s->heap_head = head;
    for (struct _PyInterpreterFrame *f = head; f; ) {
        struct _PyInterpreterFrame *next = f->previous;
        while (next && next->owner == FRAME_OWNED_BY_CSTACK) next = next->previous;
        if (next != f->previous) {
            if (links_push(s, f, f->previous) < 0) return -1;
            f->previous = next;
        }
        f = next;
    }
    return 0;
}

static void unhide_cstack_frames(tpy_state *s)
{
    while (s->nlinks) {
        s->nlinks--;
        ((struct _PyInterpreterFrame *)s->links[s->nlinks].frame)->previous = s->links[s->nlinks].previous;
    }
}
#endif

/* The link below a continuation's own frames (PyPy's f_back of the callable's bottom frame): while
 * a continuation runs, its bottom frame links to the top frame of the continuation its continulet
 * holds (usually the one that switched to it; where its result goes), so sys._getframe(), f_back
 * and tracebacks walk on into it as after a call. Only the running continuation is linked: save
 * cuts the link, restore makes it again, so a suspended chain always ends in None and never
 * reaches frames that ran or finished meanwhile; and the linked one stays suspended as long as
 * the link exists (it can only run after a switch, which cuts it).
 * The link is the field each version reads for the frame below: f_back (<=3.10, an owned
 * reference), `previous` (3.11+; on 3.12+ usually that of the entry frame below the bottom
 * frame). The thread's head is the link itself while the continuation has no frame of its own,
 * so a new bottom frame (and, 3.11/3.12, a new bottom eval loop through root_cframe) picks it up. */
#if !V311
typedef PyFrameObject tpy_frame;
#define LINK(f) ((f)->f_back)
#define OWN_HEAD(s) ((s)->frame)
#define THREAD_HEAD(ts) ((ts)->frame)
#define TOP_OF(s) ((s)->frame)
#else
typedef struct _PyInterpreterFrame tpy_frame;
#define LINK(f) ((f)->previous)
#define OWN_HEAD(s) ((s)->current_frame)
#define THREAD_HEAD(ts) (*frame_head(ts))
#if V312
#define TOP_OF(s) ((s)->heap_head)
#else
#define TOP_OF(s) ((s)->current_frame)
#endif
#endif

/* Save: the own frames end where the chain reaches the link; cut it there. */
static void cut_link(tpy_state *s)
{
    tpy_frame *root = s->root, *f = OWN_HEAD(s);
    s->bottom = NULL;
    if (!root) return;
    if (f == root) {
        OWN_HEAD(s) = NULL;
        return;
    }
    while (f && LINK(f) != root) f = LINK(f);
    if (!f) return;
    LINK(f) = NULL;
#if !V311
    Py_DECREF(root);            /* the switcher's running frame: its eval loop keeps it alive */
#endif
    s->bottom = f;
}

/* Restore: link to `root` (the held continuation's top frame, or NULL). */
static void make_link(PyThreadState *ts, tpy_state *s, tpy_frame *root)
{
    s->root = root;
#if V311 && !V313
    s->root_cframe.current_frame = root;
#endif
    if (!root) return;
    if (!THREAD_HEAD(ts)) {
        THREAD_HEAD(ts) = root;
    } else if (s->bottom) {
#if !V311
        Py_INCREF(root);
#endif
        LINK((tpy_frame *)s->bottom) = root;
    }
}

/* Whom a continuation whose continulet holds `from` links to; `from == s` (its save failed and
 * is undone): the link it had. */
static tpy_frame *link_target(tpy_state *s, tpy_state *from)
{
    if (s->detached || !from) return NULL;
    return from == s ? (tpy_frame *)s->root : (tpy_frame *)TOP_OF(from);
}

/* States are made and freed with the GIL held: pymalloc, no malloc header. */
tpy_state *tpy_state_new(void)
{
    return PyMem_Calloc(1, sizeof(tpy_state));
}

/* The main continuation's frames are the thread's own; a continulet may opt out too. */
void tpy_set_detached(tpy_state *s) { s->detached = 1; }

/* Per flag (the `slot` its caller names), the last answer of tpy_type_flag that was True or
 * False itself, for the type and version tag it was found with: any change to a type or its bases
 * gives it a new tag (tags are never reused), so a continulet subclass made again and again asks
 * its MRO once. The GIL protects these. */
#define TPY_TYPE_FLAGS 2
static struct {
    PyTypeObject *type;
    PyObject *name;
    unsigned int tag;
    int value;
} flag_cache[TPY_TYPE_FLAGS];

static int version_tag_valid(PyTypeObject *type)
{
#if !V313
    /* <=3.12: the flag says whether the tag is current */
    return PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG) && type->tp_version_tag != 0;
#else
    return type->tp_version_tag != 0;   /* 3.13: tag 0 is none (the flag is unused) */
#endif
}

/* Whether `type` or a base sets the class attribute `name` to a true value (1, 0, -1 with an
 * exception set): a lookup in the type's MRO through its method cache, without type_getattro's
 * metatype steps, on every continulet a subclass makes; `slot` is the flag's cache entry. */
int tpy_type_flag(PyTypeObject *type, PyObject *name, int slot)
{
    if (slot < 0 || slot >= TPY_TYPE_FLAGS) {
        PyErr_SetString(PyExc_SystemError, "tpy_type_flag: no such cache slot");
        return -1;
    }
    if (type == flag_cache[slot].type && name == flag_cache[slot].name && version_tag_valid(type)
        && type->tp_version_tag == flag_cache[slot].tag)
        return flag_cache[slot].value;
    PyObject *v = _PyType_Lookup(type, name);   /* borrowed: held across a __bool__ */
    if (!v) return 0;
    if ((v == Py_True || v == Py_False) && version_tag_valid(type)) {
        flag_cache[slot].type = type;
        flag_cache[slot].name = name;
        flag_cache[slot].tag = type->tp_version_tag;
        flag_cache[slot].value = v == Py_True;
        return flag_cache[slot].value;
    }
    Py_INCREF(v);
    int flag = PyObject_IsTrue(v);
    Py_DECREF(v);
    return flag;
}

void tpy_restore(tpy_state *s, tpy_state *from);

/* Called in the running continuation just before it switches away (GIL held), with the argument
 * vector of the `switch` method it leaves through (NULL when it leaves another way). */
int tpy_save(tpy_state *s, void *switch_args)
{
    PyThreadState *ts = PyThreadState_Get();
    s->switch_args = switch_args;
#if !V311
    s->frame = ts->frame;
#else
    s->current_frame = *frame_head(ts);
#endif
    cut_link(s);
#if !V311
    Py_XINCREF(s->frame);                       /* frame objects always exist */
    Py_XSETREF(s->top_frame, (PyObject *)s->frame);
#endif
#if V310 && !V313
    s->cframe = ts->cframe;
#endif
#if !V311
    s->py_depth = ts->recursion_depth;
#elif !V312
    s->py_depth = ts->recursion_limit - ts->recursion_remaining;
#else
    s->py_depth = ts->py_recursion_limit - ts->py_recursion_remaining;
    s->c_depth = TPY_C_RECURSION_LIMIT - ts->c_recursion_remaining;
#endif
#if V311
    s->datastack_chunk = ts->datastack_chunk;
    s->datastack_top = ts->datastack_top;
    s->datastack_limit = ts->datastack_limit;
#endif
    s->tracing = ts->tracing;
    s->exc_info = ts->exc_info;
    s->exc_state = ts->exc_state;
    s->context = ts->context;
    ts->context = NULL;
#if !V313
    s->trash_delete_nesting = TPY_TRASH_NESTING(ts);
#else
    s->delete_later = ts->delete_later;
    ts->delete_later = NULL;
    s->critical_section = ts->critical_section;
#endif
#if V312
    if (hide_cstack_frames(s) < 0) {
        /* Put back what moved, its link included, so the caller goes on as if it had not tried. */
        tpy_restore(s, s);
        PyErr_NoMemory();
        return -1;
    }
#endif
    s->started = 1;
    return 0;
}

/* Called in the resumed continuation right after the switch returned into it, with the state of
 * the continuation its continulet holds now (NULL: none), which its frames link to. */
void tpy_restore(tpy_state *s, tpy_state *from)
{
    PyThreadState *ts = PyThreadState_Get();
#if V312
    unhide_cstack_frames(s);
#endif
#if V310 && !V313
    ts->cframe = s->cframe;
#endif
#if !V311
    ts->frame = s->frame;
#else
    *frame_head(ts) = s->current_frame;
#endif
    ts->tracing = s->tracing;
    TPY_REFRESH_USE_TRACING(ts);
#if !V311
    ts->recursion_depth = s->py_depth;
#elif !V312
    ts->recursion_remaining = ts->recursion_limit - s->py_depth;
#else
    ts->py_recursion_remaining = ts->py_recursion_limit - s->py_depth;
    ts->c_recursion_remaining = TPY_C_RECURSION_LIMIT - s->c_depth;
#endif
#if V311
    ts->datastack_chunk = s->datastack_chunk;
    ts->datastack_top = s->datastack_top;
    ts->datastack_limit = s->datastack_limit;
    s->datastack_chunk = NULL;
#endif
    ts->exc_state = s->exc_state;
    ts->exc_info = s->exc_info ? s->exc_info : &ts->exc_state;
    memset(&s->exc_state, 0, sizeof s->exc_state);
    Py_XSETREF(ts->context, s->context);
    s->context = NULL;
    ts->context_ver++;
#if !V313
    TPY_TRASH_NESTING(ts) = s->trash_delete_nesting;
#else
    ts->delete_later = s->delete_later;
    s->delete_later = NULL;
    ts->critical_section = s->critical_section;
#endif
#if !V311
    Py_CLEAR(s->top_frame);
#endif
    make_link(ts, s, link_target(s, from));
}

/* Takes the data-stack root chunk (3.11+) of a new continuation when its continulet is bound,
 * where running out of memory is a plain MemoryError: its first switch-in cannot fail then (it
 * runs on the new stack, where nothing may run before its state is installed). -1 on error. */
int tpy_reserve(tpy_state *s)
{
#if V311
    if (!s->datastack_chunk) {
        s->datastack_chunk = root_chunk_get();
        if (!s->datastack_chunk) { PyErr_NoMemory(); return -1; }
    }
#else
    (void)s;
#endif
    return 0;
}

/* Installs the fresh state of a new continuation on its first switch-in: empty frame chain, own
 * data stack (reserved by tpy_reserve), no handled exception, the context set on it. Its first
 * eval loop links its cframe (3.10-3.12) to root_cframe, kept here rather than on the C stack,
 * which every suspended copy of the stack would carry. */
void tpy_start(tpy_state *s, tpy_state *from)
{
    PyThreadState *ts = PyThreadState_Get();
#if V311
    _PyStackChunk *root = s->datastack_chunk;
    s->datastack_chunk = NULL;
#endif
#if V310 && !V313
    /* Not a copy of the switcher's cframe: that one is on the switcher's stack, which this one
     * may have replaced in a shared region. */
    memset(&s->root_cframe, 0, sizeof s->root_cframe);
    s->root_cframe.previous = &ts->root_cframe;
    ts->cframe = &s->root_cframe;
#endif
    ts->tracing = 0;
    TPY_REFRESH_USE_TRACING(ts);
#if !V311
    ts->frame = NULL;
#elif !V313
    ts->cframe->current_frame = NULL;
#else
    ts->current_frame = NULL;
#endif
    /* An empty frame chain has depth 0: inheriting the switcher's depth would let a chain of
     * continuations, each started from the previous one, overflow the recursion limit. */
#if !V311
    ts->recursion_depth = 0;
#elif !V312
    ts->recursion_remaining = ts->recursion_limit;
#else
    ts->py_recursion_remaining = ts->py_recursion_limit;
    ts->c_recursion_remaining = TPY_C_RECURSION_LIMIT;  /* fresh C stack */
#endif
#if V311
    ts->datastack_chunk = root;
    ts->datastack_top = &root->data[1];  /* as CPython does for a root chunk */
    ts->datastack_limit = (PyObject **)((char *)root + root->size);
#endif
    memset(&ts->exc_state, 0, sizeof ts->exc_state);
    ts->exc_info = &ts->exc_state;
    Py_XSETREF(ts->context, s->context);
    s->context = NULL;
    ts->context_ver++;
#if !V313
    TPY_TRASH_NESTING(ts) = 0;
#else
    ts->delete_later = NULL;
    ts->critical_section = 0;
#endif
    make_link(ts, s, link_target(s, from));
    s->started = 1;
}

/* Calls a continuation's callable: a tail call into its vectorcall, so no frame of ours stays
 * below the callable's on the continuation's C stack. */
PyObject *tpy_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    vectorcallfunc f = PyVectorcall_Function(callable);
    if (f) return f(callable, args, nargsf, kwnames);
    return PyObject_Vectorcall(callable, args, nargsf, kwnames);
}

/* A hidden call (src/hidden.rs): calls func(self, *args) (vectorcall arguments, nargs positional)
 * with the thread's tracing level one above what it was at its start, so CPython reports no trace
 * or profile event, as while it runs a trace function. A switch inside moves the level with the
 * continuation, so the one that returns here finds the level it set. A suspended continuation
 * keeps this frame on its stack: small on purpose. */
#define TPY_HIDDEN_SMALL 4
PyObject *tpy_hidden_call(PyObject *func, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[TPY_HIDDEN_SMALL], **vector = small;
    if (total >= TPY_HIDDEN_SMALL) {
        vector = PyMem_Malloc((total + 1) * sizeof *vector);
        if (!vector) return PyErr_NoMemory();
    }
    vector[0] = self;
    for (Py_ssize_t i = 0; i < total; i++) vector[i + 1] = args[i];   /* mostly 0 or 1: no memcpy call */
    PyThreadState *ts = PyThreadState_Get();
    int level = ts->tracing;
    ts->tracing = level + 1;
    TPY_REFRESH_USE_TRACING(ts);
    PyObject *result = tpy_call(func, vector, nargs + 1, kwnames);
    ts->tracing = level;
    TPY_REFRESH_USE_TRACING(ts);
    if (vector != small) PyMem_Free(vector);
    return result;
}

int tpy_tracing(void) { return PyThreadState_Get()->tracing; }

/* Calls func(obj) as a hidden call, as CPython calls a finalizer: the exception being raised
 * stays, and func's error goes to sys.unraisablehook with func as its object. */
void tpy_hidden_finalize(PyObject *func, PyObject *obj)
{
#if V312
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
#endif
    PyObject *no_args[1] = {NULL};
    PyObject *result = tpy_hidden_call(func, obj, no_args, 0, NULL);
    if (result) Py_DECREF(result);
    else PyErr_WriteUnraisable(func);
#if V312
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(type, value, tb);
#endif
}

/* Makes the type's own attributes read-only, as PyPy's built-in types (3.10+; 3.9 has no such
 * flag for heap types). Subclasses stay mutable. */
void tpy_make_immutable(PyTypeObject *type)
{
#if V310
    type->tp_flags |= Py_TPFLAGS_IMMUTABLETYPE;
    PyType_Modified(type);
#else
    (void)type;
#endif
}

/* Whether Py_FinalizeEx has begun (after atexit callbacks, before modules are torn down). */
int tpy_finalizing(void)
{
#if V313
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* The interpreter's flag that a garbage collection runs (its gc.callbacks included): the collector
 * keeps the heads of its object lists on its C stack, whose neighbours are relinked in place when
 * objects die, so no switch may copy that stack out meanwhile. Read on every switch, so the
 * binding keeps its address. The field is the same from 3.9 to 3.13. */
const int *tpy_gc_collecting_flag(void)
{
    return &PyInterpreterState_Get()->gc.collecting;
}

void tpy_set_tracing(int level)
{
    PyThreadState *ts = PyThreadState_Get();
    ts->tracing = level;
    TPY_REFRESH_USE_TRACING(ts);
}

/* The running continuation finished (its Python frames are gone): release its own state before
 * the final switch; the target's tpy_restore installs everything else. Returns the context it
 * ended in (owned; NULL if none). */
PyObject *tpy_finish(void)
{
    PyThreadState *ts = PyThreadState_Get();
    THREAD_HEAD(ts) = NULL;     /* the link, which the eval loop's exit left there */
#if V311
    free_chunks(ts->datastack_chunk);
    ts->datastack_chunk = NULL;
    ts->datastack_top = NULL;
    ts->datastack_limit = NULL;
#endif
    Py_CLEAR(ts->exc_state.exc_value);
#if !V311
    Py_CLEAR(ts->exc_state.exc_type);
    Py_CLEAR(ts->exc_state.exc_traceback);
#endif
    PyObject *context = ts->context;
    ts->context = NULL;
    return context;
}

/* Empties a state that is not suspended with live frames (never started, or finished) for reuse:
 * as tpy_state_new made it. Its references are dropped last, once the state is consistent (their
 * finalizers may run any code). */
void tpy_state_recycle(tpy_state *s)
{
#if V311
    if (s->datastack_chunk) free_chunks(s->datastack_chunk);
#endif
#if V312
    if (s->links != &s->link0) PyMem_Free(s->links);
#endif
#if !V311
    PyObject *top = s->top_frame, *type = s->exc_state.exc_type, *tb = s->exc_state.exc_traceback;
#endif
    PyObject *context = s->context, *exc = s->exc_state.exc_value;
    memset(s, 0, sizeof *s);
#if !V311
    Py_XDECREF(top);
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    Py_XDECREF(context);
    Py_XDECREF(exc);
}

/* Frees a state that is not suspended with live frames (never started, or finished). */
void tpy_state_free(tpy_state *s)
{
    tpy_state_recycle(s);
    PyMem_Free(s);
}

/* New reference to the top frame of a suspended continuation, or None. On 3.11+ the frame object
 * is made here, on demand, not on every switch: the interpreter makes it by reading the thread's
 * frame chain, which is pointed at the suspended chain meanwhile, with the GC off so that no
 * finalizer runs (and switches) while it does. */
PyObject *tpy_top_frame(tpy_state *s)
{
#if !V311
    PyObject *f = s->top_frame;
#else
    PyObject *f = NULL;
#if V312
    struct _PyInterpreterFrame *head = s->heap_head;
#else
    struct _PyInterpreterFrame *head = s->current_frame;
#endif
    if (head && s->started) {
        PyThreadState *ts = PyThreadState_Get();
        struct _PyInterpreterFrame *running = *frame_head(ts);
        int gc_was = PyGC_Disable();
        *frame_head(ts) = head;
        f = (PyObject *)PyThreadState_GetFrame(ts);
        *frame_head(ts) = running;
        if (gc_was) PyGC_Enable();
        if (!f) PyErr_Clear();
        return f ? f : Py_NewRef(Py_None);
    }
#endif
    if (!f) f = Py_None;
    Py_INCREF(f);
    return f;
}

/* Context of a suspended/unstarted continuation (borrowed; may be NULL) and its replacement. */
PyObject *tpy_get_context(tpy_state *s) { return s->context; }
void tpy_set_context(tpy_state *s, PyObject *ctx) { Py_XINCREF(ctx); Py_XSETREF(s->context, ctx); }

/* Context of the running continuation (borrowed; may be NULL) and entering another one. */
PyObject *tpy_get_current_context(void) { return PyThreadState_Get()->context; }
void tpy_set_current_context(PyObject *ctx)
{
    PyThreadState *ts = PyThreadState_Get();
    Py_XINCREF(ctx);
    Py_XSETREF(ts->context, ctx);
    ts->context_ver++;
}

/* The running thread's trash can nesting (the state's trash_delete_nesting field above), or -1
 * on 3.13, which has no such counter (its trash can defers by C recursion depth). */
int tpy_trash_delete_nesting(void)
{
#if !V313
    return TPY_TRASH_NESTING(PyThreadState_Get());
#else
    return -1;
#endif
}

/* GC: visits exactly the references a suspended continuation owns: its exception state, context
 * and top frame object, and everything its frames own. Frames of the continuation are owned by
 * its C stack (<=3.10) or its data stack (3.11+), so the GC cannot reach them otherwise; frames
 * owned by generators are skipped (their generator traverses them).
 *
 * The value stacks: a frame that called a Python function inline (3.11+) recorded its stack
 * pointer. A frame inside a call into C did not; its live entries come from the static stack
 * depth at its instruction (stackdepth.c), and only where that is exact: all of a call's inputs
 * while the call runs, which holds when the called object is continulet.switch/throw (top frame)
 * or the function the callee frame runs (lower frames): found in the vector slot, it proves the
 * call is in progress (not cleaning up) and that nobody borrowed that slot. Otherwise only the
 * entries below the inputs, and none at instructions other than calls. What is left out stays
 * uncollectable, never freed early. */
static PyObject *switch_descr, *throw_descr;

void tpy_set_switch_methods(PyObject *sw, PyObject *th) { switch_descr = sw; throw_descr = th; }

/* continulet.switch/throw, unbound (method descriptor: the type's, or the `switch` a subclass
 * gets) or bound (builtin method): what the top frame of a suspended continuation called; they
 * leave the caller's argument vector alone. */
static int is_switch_method(PyObject *o)
{
    if (o == switch_descr || o == throw_descr) return 1;
    if (!switch_descr) return 0;
    PyMethodDef *ml;
    if (Py_IS_TYPE(o, &PyMethodDescr_Type)) ml = ((PyMethodDescrObject *)o)->d_method;
    else if (PyCFunction_Check(o)) ml = ((PyCFunctionObject *)o)->m_ml;
    else return 0;
    return ml == ((PyMethodDescrObject *)switch_descr)->d_method
        || ml == ((PyMethodDescrObject *)throw_descr)->d_method;
}

/* Whether `o` is a hidden method (src/hidden.rs; descriptor or bound) that calls a function
 * matching `callee` (3.11+: that function; <=3.10: one running that code object). */
int tpy_hidden_funcs(PyMethodDef *ml, PyObject **funcs);

static int hidden_calls(PyObject *o, PyObject *callee, int by_code)
{
    PyMethodDef *ml;
    if (Py_IS_TYPE(o, &PyMethodDescr_Type)) ml = ((PyMethodDescrObject *)o)->d_method;
    else if (PyCFunction_Check(o)) ml = ((PyCFunctionObject *)o)->m_ml;
    else return 0;
    PyObject *funcs[2];
    int n = tpy_hidden_funcs(ml, funcs);
    for (int i = 0; i < n; i++) {
        PyObject *f = funcs[i];
        if (by_code ? PyFunction_Check(f) && PyFunction_GET_CODE(f) == callee : f == callee) return 1;
    }
    return 0;
}

/* The top frame's switch call is the one in progress only if the switch it left through got its
 * arguments from this frame's value stack: a switch made from C while the frame's call was
 * already over (a weakref callback or __del__ run as it released its inputs) got them elsewhere. */
#define TPY_THROW_ARGS ((void *)1)   /* a departure through throw (lib.rs THROW_ARGS): not known */

static int called_from(PyObject **stack, PyCodeObject *code, void *switch_args)
{
    if (switch_args == TPY_THROW_ARGS) return 1;
    PyObject **args = switch_args;
    return args >= stack && args <= stack + code->co_stacksize;
}

static int live_stack(PyCodeObject *code, int index, PyObject **stack, int top, void *switch_args,
                      int (*runs_callee)(PyObject *, void *), void *callee)
{
    tsd_instr in;
    tsd_call call;
    if (tsd_instruction(code, index, &in) < 0 || tsd_call_of(&in, &call) < 0) return 0;
    if (call.height > code->co_stacksize) return 0;
    int k = tsd_call_vector_slot(&call, stack);
    if (k >= 0 && stack[k]
        && (top ? called_from(stack, code, switch_args) && is_switch_method(stack[k])
                : runs_callee(stack[k], callee)))
        return call.height;
    return call.base;
}

#if !V311
/* <=3.10: cleanup after a call releases the inputs top-down, the callable last, so the vector
 * slot still holds the callable whenever a __del__ switched, alive unless it is the one being
 * deallocated (refcount 0; then it is not looked into). A function with the callee frame's code
 * is the callee. (A bound method called plainly lends the slot to self: not matched, so such a
 * frame reports only the entries below its inputs.) */
static int runs_callee(PyObject *callable, void *callee_code)
{
    if (Py_REFCNT(callable) <= 0) return 0;
    if (PyFunction_Check(callable)) return PyFunction_GET_CODE(callable) == (PyObject *)callee_code;
    return hidden_calls(callable, (PyObject *)callee_code, 1);
}

int tpy_traverse(tpy_state *s, visitproc visit, void *arg)
{
    Py_VISIT(s->top_frame);
    Py_VISIT(s->context);
    Py_VISIT(s->exc_state.exc_value);
    Py_VISIT(s->exc_state.exc_type);
    Py_VISIT(s->exc_state.exc_traceback);
    PyFrameObject *above = NULL;
    for (PyFrameObject *f = s->frame; f; above = f, f = f->f_back) {
        if (PyObject_GC_IsTracked((PyObject *)f)) continue;   /* a generator's frame traverses itself */
        int err = Py_TYPE(f)->tp_traverse((PyObject *)f, visit, arg);
        if (err) return err;
        PyObject **stack = f->f_valuestack;
        int n = live_stack(f->f_code, TPY_LASTI_UNITS(f), stack, above == NULL, s->switch_args, runs_callee,
                           above ? above->f_code : NULL);
        for (int i = 0; i < n; i++) Py_VISIT(stack[i]);
    }
    return 0;
}
#else
/* 3.11+: the callee frame owns its function; comparing pointers never reads a released slot.
 * 3.12+ call a Python function inline (a recorded stack pointer), so the slot holding the callee's
 * function itself means a call that is over: its result, stored in that slot before the eval loop
 * runs pending work (a collection whose finalizer is that function), with released inputs above. */
static int runs_callee(PyObject *callable, void *callee_func)
{
#if !V312
    if (callable == callee_func) return 1;
#endif
    return hidden_calls(callable, (PyObject *)callee_func, 0);
}

int tpy_traverse(tpy_state *s, visitproc visit, void *arg)
{
    Py_VISIT(s->context);
    Py_VISIT(s->exc_state.exc_value);
#if V312
    struct _PyInterpreterFrame *head = s->heap_head;   /* never read C-stack frames */
#else
    struct _PyInterpreterFrame *head = s->current_frame;
#endif
    struct _PyInterpreterFrame *above = NULL;
    for (struct _PyInterpreterFrame *f = head; f; above = f, f = f->previous) {
        if (f->owner != FRAME_OWNED_BY_THREAD) continue;
#if V313
        Py_VISIT(f->f_executable);
        Py_VISIT(f->f_funcobj);
        PyCodeObject *code = (PyCodeObject *)f->f_executable;
        if (!PyCode_Check(code)) continue;
#elif V312
        Py_VISIT(f->f_code);
        Py_VISIT(f->f_funcobj);
        PyCodeObject *code = f->f_code;
#else
        Py_VISIT(f->f_code);
        Py_VISIT(f->f_func);
        PyCodeObject *code = f->f_code;
#endif
        Py_VISIT(f->f_locals);
        Py_VISIT(f->frame_obj);
        int nlocals = code->co_nlocalsplus;
        for (int i = 0; i < nlocals; i++) Py_VISIT(f->localsplus[i]);
        PyObject **stack = f->localsplus + nlocals;
        int n;
        if (TPY_STACK_RECORDED(f, above)) {
            n = f->stacktop - nlocals;       /* it called a Python function inline */
        } else {
            n = live_stack(code, TPY_LASTI_UNITS(f), stack, above == NULL, s->switch_args, runs_callee,
                           above ? (void *)TPY_FRAME_FUNC(above) : NULL);
        }
        for (int i = 0; i < n; i++) Py_VISIT(stack[i]);
    }
    return 0;
}
#endif

/* A suspended continuation whose thread exited can never run again: drops what its frames own
 * without running them (greenlet does the same for a dead thread's greenlets), so that the state
 * and its data stack can be freed. Only what traversal would visit is released; the rest stays
 * leaked. Returns -1, changing nothing, when a frame object still needs its frame's data
 * (3.11+: referenced from elsewhere); the continuation then stays leaked as a whole. */
#if !V311
int tpy_abandon(tpy_state *s)
{
    size_t n = 0;
    for (PyFrameObject *f = s->frame; f; f = f->f_back) n++;
    int *live = PyMem_Calloc(n ? n : 1, sizeof *live);
    if (!live) return -1;
    size_t i = 0;
    PyFrameObject *above = NULL;
    for (PyFrameObject *f = s->frame; f; above = f, f = f->f_back, i++) {
        if (PyObject_GC_IsTracked((PyObject *)f)) { live[i] = -1; continue; }  /* a generator's */
        live[i] = live_stack(f->f_code, TPY_LASTI_UNITS(f), f->f_valuestack, above == NULL,
                             s->switch_args, runs_callee, above ? above->f_code : NULL);
    }
    /* Each running frame is owned once by its eval loop on the abandoned C stack (and by the
     * frame above through f_back): the values first, then those references, bottom-up, so every
     * frame stays alive until its own is dropped. */
    PyFrameObject **frames = PyMem_Calloc(n ? n : 1, sizeof *frames);
    if (!frames) { PyMem_Free(live); return -1; }
    i = 0;
    for (PyFrameObject *f = s->frame; f; f = f->f_back) frames[i++] = f;
    for (i = 0; i < n; i++)
        for (int k = 0; k < live[i]; k++) Py_CLEAR(frames[i]->f_valuestack[k]);
    Py_CLEAR(s->top_frame);
    for (i = n; i-- > 0; )
        if (live[i] >= 0) Py_DECREF(frames[i]);
    s->frame = NULL;
    PyMem_Free(frames);
    PyMem_Free(live);
    return 0;
}
#else
int tpy_abandon(tpy_state *s)
{
#if V312
    struct _PyInterpreterFrame *head = s->heap_head;
#else
    struct _PyInterpreterFrame *head = s->current_frame;
#endif
    size_t n = 0;
    for (struct _PyInterpreterFrame *f = head; f; f = f->previous) n++;
    int *live = PyMem_Calloc(n ? n : 1, sizeof *live);
    if (!live) return -1;
    size_t i = 0;
    struct _PyInterpreterFrame *above = NULL;
    PyFrameObject *above_obj = NULL;
    for (struct _PyInterpreterFrame *f = head; f; above = f, f = f->previous, i++) {
        live[i] = -1;
        if (f->owner != FRAME_OWNED_BY_THREAD) { above_obj = NULL; continue; }
        /* its frame object may be held by the frame object above (f_back), nothing else */
        PyFrameObject *fo = f->frame_obj;
        if (fo && Py_REFCNT(fo) > 1 + (above_obj && above_obj->f_back == fo)) {
            PyMem_Free(live);
            return -1;
        }
        above_obj = fo;
#if V313
        PyCodeObject *code = (PyCodeObject *)f->f_executable;
        if (!PyCode_Check(code)) continue;
#else
        PyCodeObject *code = f->f_code;
#endif
        int nlocals = code->co_nlocalsplus;
        live[i] = nlocals + (TPY_STACK_RECORDED(f, above)
            ? f->stacktop - nlocals
            : live_stack(code, TPY_LASTI_UNITS(f), f->localsplus + nlocals, above == NULL,
                         s->switch_args, runs_callee, above ? (void *)TPY_FRAME_FUNC(above) : NULL));
    }
    /* Top-down: a frame object's f_back is released with it, before the frame below's own. */
    i = 0;
    for (struct _PyInterpreterFrame *f = head; f; f = f->previous, i++) {
        if (live[i] < 0) continue;
        PyObject *fo = (PyObject *)f->frame_obj;
        f->frame_obj = NULL;
        Py_XDECREF(fo);
        for (int k = 0; k < live[i]; k++) Py_CLEAR(f->localsplus[k]);
        Py_CLEAR(f->f_locals);
#if V313
        Py_CLEAR(f->f_funcobj);
        Py_CLEAR(f->f_executable);
#elif V312
        Py_CLEAR(f->f_funcobj);
        Py_CLEAR(f->f_code);
#else
        Py_CLEAR(f->f_func);
        Py_CLEAR(f->f_code);
#endif
    }
    PyMem_Free(live);
    free_chunks(s->datastack_chunk);
    s->datastack_chunk = NULL;
    return 0;
}
#endif

/* For frames.c: the top heap frame of a suspended continuation (3.11+; NULL before), and the
 * handled exception it resumes with (borrowed; NULL or None when there is none). */
void *tpy_frames_head(tpy_state *s)
{
#if V312
    return s->heap_head;
#elif V311
    return s->current_frame;
#else
    (void)s;
    return NULL;
#endif
}

PyObject *tpy_handled_exception(tpy_state *s)
{
    _PyErr_StackItem *item = s->exc_info;
    if (!item || item == &PyThreadState_Get()->exc_state) item = &s->exc_state;
    return item->exc_value;
}
