vcl 4.1;
# Edge cache for ocspd (Varnish 7, with varnish-modules for POST caching and xkey).
#
# - Honours ocspd's headers: the TTL is ocspd's max-age, which never reaches past a
#   response's nextUpdate; nothing is served stale (grace 0); error answers
#   (Cache-Control: no-cache) are not cached.
# - Caches GET under one object for every spelling of the path (percent-encoded or not,
#   extra leading slashes), and POST by its body.
# - Accepts purges only from the addresses in acl ocspd_purgers: BAN with Ocsp-Purge-Tags
#   (ocspd's "ban" mode) and PURGE with xkey-purge (its "xkey" mode). Both purge by the tags
#   ocspd puts in Surrogate-Key, so one purge reaches GET and POST copies alike.
#
# Edit the backend and the acl for your site; see deploy/README.md.

import std;
import bodyaccess;
import xkey;

backend ocspd {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
}

# The addresses ocspd sends purges from. Nobody else may purge.
acl ocspd_purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "BAN" || req.method == "PURGE") {
        if (client.ip !~ ocspd_purgers) {
            return (synth(403, "Purges are accepted only from ocspd"));
        }
        if (req.method == "BAN") {
            if (req.http.Ocsp-Purge-Tags !~ "^[a-z0-9 -]+$") {
                return (synth(400, "Ocsp-Purge-Tags must hold ocspd cache tags"));
            }
            # Tags are [a-z0-9-] only, so they are safe inside the regex; a tag ends at any
            # other character (space or comma) or at the end. The regex holds no space, so it
            # needs no quoting in the ban expression.
            if (std.ban("obj.http.Surrogate-Key ~ (^|[^a-z0-9-])(" +
                    regsuball(regsuball(req.http.Ocsp-Purge-Tags, "^ +| +$", ""), " +", "|") +
                    ")([^a-z0-9-]|$)")) {
                return (synth(200, "Banned"));
            }
            return (synth(400, "Ban refused: " + std.ban_error()));
        }
        if (req.http.xkey-purge !~ "^[a-z0-9 -]+$") {
            return (synth(400, "xkey-purge must hold ocspd cache tags"));
        }
        set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Purged " + req.http.n-gone));
    }
    # ocspd's own endpoints stay internal.
    if (req.url ~ "^/+(metrics|healthz|readyz)$") {
        return (synth(404, "Not here"));
    }
    unset req.http.Cookie;
    unset req.http.Authorization;
    if (req.method == "POST") {
        if (req.http.Content-Type !~ "^application/ocsp-request" || !std.cache_req_body(8KB)) {
            return (pass);
        }
        set req.http.X-Ocsp-Post = "1";
        return (hash);
    }
    unset req.http.X-Ocsp-Post;
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # One object for every spelling of a GET path.
    set req.url = regsuball(req.url, "%2[Bb]", "+");
    set req.url = regsuball(req.url, "%2[Ff]", "/");
    set req.url = regsuball(req.url, "%3[Dd]", "=");
    set req.url = regsub(req.url, "^/+", "/");
    return (hash);
}

sub vcl_hash {
    if (req.http.X-Ocsp-Post) {
        hash_data("POST");
        bodyaccess.hash_req_body();
    }
    # The builtin vcl_hash then adds the URL and Host.
}

sub vcl_backend_fetch {
    if (bereq.http.X-Ocsp-Post) {
        set bereq.method = "POST";
    }
    unset bereq.http.X-Ocsp-Post;
}

sub vcl_backend_response {
    # ocspd's max-age already ends at or before nextUpdate: never serve past it.
    set beresp.grace = 0s;
    set beresp.keep = 0s;
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.xkey;
}
