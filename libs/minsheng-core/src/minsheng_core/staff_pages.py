"""Staff web pages of a service: sign-in, the session cookie and CSRF tokens, the same way everywhere.

The cookie holds a session token of ``StaffDirectory`` (HttpOnly, SameSite=Strict, limited to the pages' path);
forms carry a CSRF token derived from the session with the service's secret key (``app.state.settings.secret_key``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minsheng_core.staff import Role, StaffMember

log = structlog.get_logger(__name__)


class SignInNeeded(Exception):
    """Not signed in, or not allowed on these pages."""

    def __init__(self, pages: StaffPages) -> None:
        super().__init__(pages.prefix)
        self.pages = pages


class StaffPages:
    """The pages under ``prefix`` (their JSON helpers under ``prefix + '/api/'``), open to ``roles``."""

    def __init__(self, prefix: str, cookie: str, roles: tuple[Role, ...]) -> None:
        self.prefix = prefix
        self.cookie = cookie
        self.roles = roles

    def install(self, app: Any) -> None:
        """Pages redirect to the sign-in page; the pages' JSON endpoints answer 401."""

        @app.exception_handler(SignInNeeded)
        async def _to_sign_in(request: Request, exc: SignInNeeded) -> Response:
            if request.url.path.startswith(exc.pages.prefix + "/api/"):
                return JSONResponse({"error": "请先登录"}, status_code=401)
            return RedirectResponse(exc.pages.prefix + "/login", status_code=303)

    def session(self, request: Request) -> str:
        return request.cookies.get(self.cookie, "")

    def csrf(self, request: Request) -> str:
        """The CSRF token of the request's session, for the forms of the page being rendered."""
        key = request.app.state.settings.secret_key.get_secret_value().encode()
        return hmac.new(key, f"csrf:{self.prefix}:{self.session(request)}".encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, request: Request, given: str) -> None:
        if not hmac.compare_digest(given, self.csrf(request)):
            raise HTTPException(status_code=403, detail="表单已过期，请刷新页面后重试")

    async def member(self, request: Request) -> StaffMember:
        """The signed-in member of staff, if their role may use these pages."""
        member = await request.app.state.staff.member_for(self.session(request) or None)
        if member is None or not member.has(*self.roles):
            raise SignInNeeded(self)
        return member

    async def sign_in(self, request: Request, username: str, password: str) -> Response | None:
        """A redirect into the pages with the session cookie set, or None when the password or the role is wrong."""
        member = await request.app.state.staff.authenticate(username.strip().lower(), password)
        if member is None or not member.has(*self.roles):
            log.info("staff_pages_sign_in_refused", pages=self.prefix)
            return None
        token = await request.app.state.staff.open_session(member)
        response = RedirectResponse(self.prefix, status_code=303)
        secure = bool(getattr(request.app.state.settings, "cookie_secure", False))
        response.set_cookie(self.cookie, token, httponly=True, samesite="strict", secure=secure, path=self.prefix)
        log.info("staff_pages_signed_in", pages=self.prefix, staff=member.username)
        return response

    async def sign_out(self, request: Request, csrf: str) -> Response:
        self.check_csrf(request, csrf)
        await request.app.state.staff.close_session(self.session(request))
        response = RedirectResponse(self.prefix + "/login", status_code=303)
        response.delete_cookie(self.cookie, path=self.prefix)
        return response


_bearer = HTTPBearer(auto_error=False)


async def token_member(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> StaffMember:
    """For staff APIs: the member of staff whose session token (POST /api/v1/auth/token) the request carries."""
    member = await request.app.state.staff.member_for(credentials.credentials if credentials else None)
    if member is None:
        raise HTTPException(
            status_code=401, detail="sign in first: a valid staff token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return member
