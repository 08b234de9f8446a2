"""HTTPS to the Tandem under test: its certificate is self-signed, in a throwaway namespace."""
import ssl
import urllib.request


def insecure_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def get(url, timeout=5):
    with urllib.request.urlopen(url, context=insecure_context(), timeout=timeout) as r:
        return r.read().decode()


def post_sdp(url, sdp, timeout=10):
    request = urllib.request.Request(url, data=sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"})
    with urllib.request.urlopen(request, context=insecure_context(), timeout=timeout) as r:
        return r.read().decode()
