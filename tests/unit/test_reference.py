"""Reference parsing, cases from distribution/reference's reference_test.go and normalize_test.go."""

import pytest

from berth.errors import InvalidArgument
from berth.images.reference import parse, parse_any, parse_docker_ref, parse_normalized, parse_repo_tag

FF = "sha256:" + "f" * 64

PARSE_OK = [
    # input, name, domain, tag, digest
    ("test_com", "test_com", "", None, None),
    ("test.com:tag", "test.com", "", "tag", None),
    ("test.com:5000", "test.com", "", "5000", None),
    ("test.com/repo:tag", "test.com/repo", "test.com", "tag", None),
    ("test:5000/repo", "test:5000/repo", "test:5000", None, None),
    ("test:5000/repo:tag", "test:5000/repo", "test:5000", "tag", None),
    (f"test:5000/repo@{FF}", "test:5000/repo", "test:5000", None, FF),
    (f"test:5000/repo:tag@{FF}", "test:5000/repo", "test:5000", "tag", FF),
    ("lowercase:Uppercase", "lowercase", "", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a/" * 127 + "a", "a", "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", None, None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app",
     "b.gcr.io", "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", None),
    ("foo_bar.com:8080", "foo_bar.com", "", "8080", None),
    ("foo/foo_bar.com:8080", "foo/foo_bar.com", "foo", "8080", None),
    ("192.168.1.1", "192.168.1.1", "", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo", "[2001:db8::1]", None, None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", None),
    ("[::1]:5000/repo", "[::1]:5000/repo", "[::1]:5000", None, None),
]

PARSE_ERR = [
    ("", "repository name must have at least one component"),
    (":justtag", "invalid reference format"),
    (f"@{FF}", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("[2001:db8::1]", "invalid reference format"),
    ("[2001:db8::1]:5000", "invalid reference format"),
    ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
]


@pytest.mark.parametrize("s,name,domain,tag,digest", PARSE_OK)
def test_parse(s, name, domain, tag, digest):
    ref = parse(s)
    assert (ref.name, ref.domain, ref.tag, ref.digest) == (name, domain, tag, digest)
    assert str(ref) == s


@pytest.mark.parametrize("s,msg", PARSE_ERR)
def test_parse_errors(s, msg):
    with pytest.raises(InvalidArgument) as e:
        parse(s)
    assert e.value.message == msg


NORMALIZED = [
    # input, full string, familiar name, familiar string (of docker_ref)
    ("busybox", "docker.io/library/busybox", "busybox", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox", "busybox:1.36"),
    ("docker.io/busybox", "docker.io/library/busybox", "busybox", "busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox", "busybox", "busybox:latest"),
    ("myuser/app", "docker.io/myuser/app", "myuser/app", "myuser/app:latest"),
    ("docker.io/myuser/app:1", "docker.io/myuser/app:1", "myuser/app", "myuser/app:1"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x", "127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
    ("localhost/x:t", "localhost/x:t", "localhost/x", "localhost/x:t"),
    ("localhost:5000/a/b", "localhost:5000/a/b", "localhost:5000/a/b", "localhost:5000/a/b:latest"),
    ("library/ubuntu/sub", "docker.io/library/ubuntu/sub", "library/ubuntu/sub", "library/ubuntu/sub:latest"),
    ("example.com/library/x", "example.com/library/x", "example.com/library/x", "example.com/library/x:latest"),
    (f"busybox@{FF}", f"docker.io/library/busybox@{FF}", "busybox", f"busybox@{FF}"),
    (f"busybox:tag@{FF}", f"docker.io/library/busybox:tag@{FF}", "busybox", f"busybox@{FF}"),
]


@pytest.mark.parametrize("s,full,fname,fstring", NORMALIZED)
def test_normalized(s, full, fname, fstring):
    ref = parse_normalized(s)
    assert str(ref) == full
    assert ref.familiar_name() == fname
    assert parse_docker_ref(s).familiar_string() == fstring


def test_docker_ref_adds_latest():
    assert str(parse_docker_ref("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse_docker_ref(f"busybox:t@{FF}")) == f"docker.io/library/busybox@{FF}"


@pytest.mark.parametrize("s,msg", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("myuser/App", "invalid reference format: repository name (myuser/App) must be lowercase"),
    ("f" * 64, f"invalid repository name ({'f' * 64}), cannot specify 64-byte hexadecimal strings"),
    ("busybox:", "invalid reference format"),
    ("bus box", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox/", "invalid reference format"),
])
def test_normalized_errors(s, msg):
    with pytest.raises(InvalidArgument) as e:
        parse_normalized(s)
    assert e.value.message == msg


def test_uppercase_domain_is_a_domain():
    # distribution treats an uppercase first component as a domain ("Uppercase/lowercase:tag" passes)
    assert parse_normalized("Uppercase/lowercase:tag").domain == "Uppercase"


def test_parse_any():
    assert parse_any("f" * 64) == "sha256:" + "f" * 64
    assert parse_any(FF) == FF
    assert str(parse_any("busybox")) == "docker.io/library/busybox"


@pytest.mark.parametrize("repo,tag,want", [
    ("bt/imported", None, "docker.io/bt/imported:latest"),
    ("bt/imported:v2", None, "docker.io/bt/imported:v2"),
    ("bt/imported", "v3", "docker.io/bt/imported:v3"),
    ("bt/imported:v2", "v3", "docker.io/bt/imported:v3"),
    ("docker.io/myuser/app", "1", "docker.io/myuser/app:1"),
    ("127.0.0.1:5000/bt/imported", "", "127.0.0.1:5000/bt/imported:latest"),
])
def test_repo_tag(repo, tag, want):
    assert str(parse_repo_tag(repo, tag)) == want


def test_repo_tag_errors():
    with pytest.raises(InvalidArgument):
        parse_repo_tag("bt/x", "bad tag")
    with pytest.raises(InvalidArgument):
        parse_repo_tag(f"bt/x@{FF}", None)
