/* render/html.c: pages built as libxml2 trees from the templates/ XHTML files, written as polyglot
 * HTML5.
 *
 * Templates are data: layout.xhtml is a whole page; each body template (index.xhtml, model.xhtml
 * ...) is a <template> element whose children are copied into the layout's main slot. An element
 * carrying data-slot="name" is a slot; the code appends to it and the attribute is dropped. Links
 * in templates are written from the site root (href="about.html") and rebased ("../about.html")
 * for pages one folder down.
 *
 * Serialization: xmlSaveToBuffer with XML_SAVE_XHTML. Why not htmlDocDumpMemoryFormat: its HTML
 * output (<meta ...>, <br>) is not well-formed XML, so only a lenient HTML parser could check it.
 * The XHTML serializer writes void elements as <br />, empty ones as <div></div>, escapes < > & "
 * in text and attributes, and keeps <!DOCTYPE html>: markup that both libxml2's strict XML parser
 * and every HTML5 parser read the same way (polyglot). Its one trap: it only switches to XHTML
 * rules when the DTD is an XHTML 1.x one, unless XML_SAVE_NO_XHTML stops that check; hence the
 * pair of flags. The inline JSON in <script> never holds < > & (board_data_json escapes them), so
 * the XML escaping and the HTML raw-text rule agree there too. All elements live in no namespace in
 * memory; the root's xmlns declaration puts them in the XHTML namespace when parsed back. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlsave.h>

#include "render/render_impl.h"

/* the templates every render needs; a missing one is an error naming the file */
static const char *const tmpl_names[] = {"layout", "index", "model",   "models",
                                         "run",    "compare", "about"};

static int tmpl_index(const struct site *s, const char *name) {
    for (int i = 0; i < s->n_tmpls; i++)
        if (!strcmp(s->tmpls[i].name, name)) return i;
    return -1;
}

/* drop every element's namespace (the root keeps its xmlns declaration) */
static void strip_ns(xmlNodePtr n) {
    for (; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE) {
            n->ns = NULL;
            strip_ns(n->children);
        }
}

int site_templates_load(struct site *s) {
    int n = (int)LB_ARRAY_LEN(tmpl_names);
    s->tmpls = xcalloc((size_t)n, sizeof *s->tmpls, "templates");
    if (!s->tmpls) return -1;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.xhtml", s->opts->templates_dir, tmpl_names[i]);
        xmlDocPtr doc = xmlReadFile(path, "UTF-8", XML_PARSE_NONET | XML_PARSE_NOERROR |
                                                       XML_PARSE_NOWARNING);
        if (!doc) {
            const xmlError *e = xmlGetLastError();
            return err("render: template %s: %s%s(line %d); templates must be well-formed XML "
                       "(--templates DIR)",
                       path, e && e->message ? e->message : "cannot read it", e ? " " : "",
                       e ? e->line : 0);
        }
        strip_ns(xmlDocGetRootElement(doc));
        s->tmpls[s->n_tmpls].name = strdup(tmpl_names[i]);
        s->tmpls[s->n_tmpls++].doc = doc;
    }
    return 0;
}

void site_templates_release(struct site *s) {
    for (int i = 0; i < s->n_tmpls; i++) {
        xmlFreeDoc(s->tmpls[i].doc);
        free(s->tmpls[i].name);
    }
    free(s->tmpls);
    s->tmpls = NULL;
    s->n_tmpls = 0;
}

/* ------------------------------------------------------------------ links */

/* a site-local reference: not absolute, no scheme, not a fragment */
static bool is_local(const char *u) {
    if (!u || !*u || u[0] == '#' || u[0] == '/') return false;
    for (const char *p = u; *p && *p != '/' && *p != '?' && *p != '#'; p++)
        if (*p == ':') return false;
    return true;
}

const char *h_href(const struct page *p, char *buf, size_t n, const char *target) {
    size_t o = 0;
    buf[0] = 0;
    if (is_local(target))
        for (int i = 0; i < p->depth && o + 3 < n; i++) {
            memcpy(buf + o, "../", 3);
            o += 3;
        }
    snprintf(buf + o, n - o, "%s", target);
    return buf;
}

static void rebase(const struct page *p, xmlNodePtr n) {
    static const char *const attrs[] = {"href", "src"};
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        for (size_t a = 0; a < LB_ARRAY_LEN(attrs); a++) {
            xmlChar *v = xmlGetProp(n, (const xmlChar *)attrs[a]);
            if (v && is_local((const char *)v)) {
                char buf[1024];
                xmlSetProp(n, (const xmlChar *)attrs[a],
                           (const xmlChar *)h_href(p, buf, sizeof buf, (const char *)v));
            }
            xmlFree(v);
        }
        rebase(p, n->children);
    }
}

static void find_slots(struct page *p, xmlNodePtr n) {
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        xmlChar *v = xmlGetProp(n, (const xmlChar *)"data-slot");
        if (v) {
            if (p->n_slots < (int)LB_ARRAY_LEN(p->slots)) {
                p->slots[p->n_slots] = n;
                /* the name outlives the attribute: a copy owned by the page */
                p->slot_names[p->n_slots++] = (const char *)xmlStrdup(v);
            }
            xmlUnsetProp(n, (const xmlChar *)"data-slot");
            xmlFree(v);
        }
        find_slots(p, n->children);
    }
}

static xmlNodePtr find_slot_node(xmlNodePtr n, const char *name) {
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        xmlChar *v = xmlGetProp(n, (const xmlChar *)"data-slot");
        bool hit = v && !strcmp((const char *)v, name);
        xmlFree(v);
        if (hit) return n;
        xmlNodePtr c = find_slot_node(n->children, name);
        if (c) return c;
    }
    return NULL;
}

/* ------------------------------------------------------------------ pages */

int page_new(struct page *p, struct site *s, const char *body, int depth, const char *title) {
    memset(p, 0, sizeof *p);
    p->site = s;
    p->depth = depth;
    int li = tmpl_index(s, "layout"), bi = tmpl_index(s, body);
    if (li < 0 || bi < 0) return err("render: no template %s.xhtml", li < 0 ? "layout" : body);
    p->doc = xmlCopyDoc(s->tmpls[li].doc, 1);
    if (!p->doc) return err("render: out of memory copying a template");
    xmlNodePtr root = xmlDocGetRootElement(p->doc);
    /* the layout's main slot receives the body template's children */
    xmlNodePtr main = find_slot_node(root, "main");
    if (!main) {
        xmlFreeDoc(p->doc);
        p->doc = NULL;
        return err("render: templates/layout.xhtml has no data-slot=\"main\"");
    }
    for (xmlNodePtr c = xmlDocGetRootElement(s->tmpls[bi].doc)->children; c; c = c->next)
        xmlAddChild(main, xmlDocCopyNode(c, p->doc, 1));
    rebase(p, root);
    find_slots(p, root);
    xmlNodePtr t = page_slot(p, "title");
    if (!t) {
        page_release(p);
        return -1;
    }
    h_text(t, title);
    xmlNodePtr banner = page_slot(p, "banner");
    if (banner && s->opts->fixture) {
        xmlNodePtr b = h_elc(banner, "p", "fixture-banner", NULL);
        h_el(b, "strong", "FIXTURE DATA");
        h_text(b, " \xe2\x80\x94 every number on this page is synthetic test data made by "
                  "tests/test_render.c, not a measurement. Do not use it to choose a model.");
        h_attr(b, "role", "alert");
    } else if (banner) {
        xmlUnlinkNode(banner);
        xmlFreeNode(banner);
        for (int i = 0; i < p->n_slots; i++)
            if (p->slots[i] == banner) p->slots[i] = NULL;
    }
    return 0;
}

xmlNodePtr page_slot(struct page *p, const char *name) {
    for (int i = 0; i < p->n_slots; i++)
        if (p->slots[i] && !strcmp(p->slot_names[i], name)) return p->slots[i];
    err("render: templates lack data-slot=\"%s\" (see render/html.c)", name);
    return NULL;
}

void page_drop_slot(struct page *p, const char *name) {
    for (int i = 0; i < p->n_slots; i++)
        if (p->slots[i] && !strcmp(p->slot_names[i], name)) {
            xmlUnlinkNode(p->slots[i]);
            xmlFreeNode(p->slots[i]);
            p->slots[i] = NULL;
        }
}

void page_release(struct page *p) {
    for (int i = 0; i < p->n_slots; i++) xmlFree((xmlChar *)p->slot_names[i]);
    if (p->doc) xmlFreeDoc(p->doc);
    p->doc = NULL;
    p->n_slots = 0;
}

int page_write(struct page *p, const char *relpath) {
    int ret = -1;
    xmlBufferPtr buf = xmlBufferCreate();
    if (!buf) goto out;
    xmlSaveCtxtPtr ctx = xmlSaveToBuffer(buf, "UTF-8",
                                         XML_SAVE_XHTML | XML_SAVE_NO_XHTML | XML_SAVE_NO_DECL);
    if (!ctx) goto out;
    xmlSaveDoc(ctx, p->doc);
    if (xmlSaveClose(ctx) < 0) {
        err("render: cannot serialize %s", relpath);
        goto out;
    }
    /* end with a newline, like any text file */
    xmlBufferAdd(buf, (const xmlChar *)"\n", 1);
    ret = site_write_file(p->site, relpath, xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
out:
    if (!buf) err("render: out of memory serializing %s", relpath);
    xmlBufferFree(buf);
    page_release(p);
    return ret;
}

/* ------------------------------------------------------------------ elements */

xmlNodePtr h_el(xmlNodePtr parent, const char *tag, const char *text) {
    xmlNodePtr n = xmlNewDocNode(parent->doc, NULL, (const xmlChar *)tag, NULL);
    xmlAddChild(parent, n);
    if (text) xmlAddChild(n, xmlNewDocText(parent->doc, (const xmlChar *)text));
    return n;
}

xmlNodePtr h_elc(xmlNodePtr parent, const char *tag, const char *cls, const char *text) {
    xmlNodePtr n = h_el(parent, tag, text);
    if (cls) h_attr(n, "class", cls);
    return n;
}

void h_attr(xmlNodePtr n, const char *name, const char *value) {
    xmlSetProp(n, (const xmlChar *)name, (const xmlChar *)value);
}

void h_text(xmlNodePtr parent, const char *text) {
    if (text && *text) xmlAddChild(parent, xmlNewDocText(parent->doc, (const xmlChar *)text));
}

void h_textf(xmlNodePtr parent, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    h_text(parent, buf);
}

xmlNodePtr h_link(const struct page *p, xmlNodePtr parent, const char *href, const char *text) {
    char buf[1024];
    xmlNodePtr a = h_el(parent, "a", text);
    h_attr(a, "href", h_href(p, buf, sizeof buf, href));
    return a;
}

xmlNodePtr h_user(xmlNodePtr parent, const char *text) {
    return h_el(parent, "bdi", text ? text : "");
}
