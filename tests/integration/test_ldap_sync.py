"""The directory sync against a real OpenLDAP server (slapd, started by the test on a loopback
port): attribute mapping of the 6.3.1.2 fields, privileged accounts by group membership, a dry
run that changes nothing, the sync from the page's API with its audit entry, a later change in
the directory, and staff login with the directory password (local passwords still work)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import ldap3
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from cti.settings import load_settings
from desk.models import AuditEntry, User, UserChange
from desk.web.app import create_app
from desk.web.keys import SESSIONS
from tests.support.slapd import ROOT_DN, ROOT_PASSWORD, SUFFIX, SlapdServer
from tests.support.staff import PASSWORD, add_staff, logged_in

PEOPLE = f"ou=people,{SUFFIX}"
ADMINS = f"cn=it-admins,ou=groups,{SUFFIX}"


@pytest.fixture(scope="module")
def slapd() -> Iterator[SlapdServer]:
    server = SlapdServer().start()
    server.add(PEOPLE, ["organizationalUnit"], {"ou": "people"})
    server.add(f"ou=groups,{SUFFIX}", ["organizationalUnit"], {"ou": "groups"})
    people = [
        ("zhangsan", "E100", "张三", "财务部", "北京总部 3层", "010-62345678", "13800138000"),
        ("lisi", "E101", "李四", "信息中心", "北京总部 5层", "8123", "13800138001"),
        ("wangwu", "E102", "王五", "人事部", "上海分公司", "021-55556666", "13800138002"),
    ]
    for uid, no, name, dept, where, office, mobile in people:
        server.add(
            f"uid={uid},{PEOPLE}",
            ["inetOrgPerson"],
            {"uid": uid, "cn": name, "sn": name[0], "displayName": name, "employeeNumber": no,
             "departmentNumber": dept, "physicalDeliveryOfficeName": where,
             "telephoneNumber": office, "mobile": mobile, "mail": f"{uid}@example.com",
             "userPassword": f"{uid}-ldap-pw"},
        )  # fmt: skip
    # An entry without an employee number is reported, not imported.
    server.add(f"uid=printer,{PEOPLE}", ["inetOrgPerson"], {"uid": "printer", "cn": "打印机",
                                                          "sn": "p"})  # fmt: skip
    server.add(ADMINS, ["groupOfNames"], {"cn": "it-admins", "member": [f"uid=lisi,{PEOPLE}"]})
    yield server
    server.stop()


@pytest.fixture
async def client(tmp_path: Path, slapd: SlapdServer) -> AsyncIterator[TestClient]:
    env = {"CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
           "CTI_DATA_DIR": str(tmp_path), "CTI_TTS_ROOT": "",
           "CTI_LDAP_URL": slapd.url, "CTI_LDAP_BIND_DN": ROOT_DN,
           "CTI_LDAP_BIND_SECRET": ROOT_PASSWORD, "CTI_LDAP_BASE_DN": PEOPLE,
           "CTI_LDAP_USER_FILTER": "(objectClass=inetOrgPerson)",
           "CTI_LDAP_PRIVILEGED_GROUPS": ADMINS, "CTI_LDAP_STAFF_LOGIN": "1"}  # fmt: skip
    c = TestClient(TestServer(create_app(load_settings(None, env), with_core=False)))
    await c.start_server()
    yield c
    await c.close()


async def users(c: TestClient) -> dict[str, User]:
    async with c.server.app[SESSIONS]() as s:
        return {u.employee_no: u for u in (await s.scalars(select(User))).all()}


async def test_sync_fills_the_directory_and_marks_privileged_accounts(
    client: TestClient, slapd: SlapdServer
) -> None:
    await logged_in(client, "lead", "lead1")
    dry = await client.post("/api/directory/sync", json={"dry_run": True})
    plan = await dry.json()
    assert dry.status == 200, plan
    assert sorted(u["employee_no"] for u in plan["created"]) == ["E100", "E101", "E102"]
    assert any("uid=printer" in s and "employee_no" in s for s in plan["skipped"])
    assert await users(client) == {}  # a dry run changes nothing
    real = await (await client.post("/api/directory/sync", json={"dry_run": False})).json()
    assert len(real["created"]) == 3
    found = await users(client)
    assert found["E100"].name == "张三" and found["E100"].department == "财务部"
    assert found["E100"].location == "北京总部 3层" and found["E100"].office_phone == "010-62345678"
    assert found["E100"].mobile == "13800138000" and found["E100"].email == "zhangsan@example.com"
    assert found["E101"].privileged and not found["E100"].privileged
    # The caller lookup finds them by the synced numbers.
    hit = (await (await client.get("/api/users?q=13800138002")).json())["users"]
    assert [u["employee_no"] for u in hit] == ["E102"]
    # Later the directory changes: wangwu moves, zhangsan becomes an admin.
    slapd.modify(f"uid=wangwu,{PEOPLE}", {"departmentNumber": [(ldap3.MODIFY_REPLACE, ["审计部"])]})
    slapd.modify(ADMINS, {"member": [(ldap3.MODIFY_ADD, [f"uid=zhangsan,{PEOPLE}"])]})
    again = await (await client.post("/api/directory/sync", json={"dry_run": True})).json()
    changes = {u["employee_no"]: u["changes"] for u in again["updated"]}
    assert changes == {"E100": {"privileged": [False, True]},
                       "E102": {"department": ["人事部", "审计部"]}}  # fmt: skip
    assert again["unchanged"] == 1
    await client.post("/api/directory/sync", json={"dry_run": False})
    found = await users(client)
    assert found["E100"].privileged and found["E102"].department == "审计部"
    async with client.server.app[SESSIONS]() as s:
        history = (
            await s.scalars(select(UserChange).where(UserChange.user_id == found["E100"].id))
        ).all()
        audits = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "directory.sync"))
        ).all()
    assert [(h.field, h.by) for h in history] == [("created", "ldap"), ("privileged", "ldap")]
    assert len(audits) == 2 and audits[0].actor == "lead1"  # dry runs are not writes


async def test_staff_log_in_with_the_directory_password_and_local_ones_remain(
    client: TestClient,
) -> None:
    await add_staff(client.server.app, "lisi", "agent", "1002")
    await add_staff(client.server.app, "zhaoliu", "agent", "1003")  # not in the directory
    ok = await client.post("/api/login", json={"username": "lisi", "password": "lisi-ldap-pw"})
    assert ok.status == 200
    local = await client.post("/api/login", json={"username": "lisi", "password": PASSWORD})
    assert local.status == 200
    for name, pw in (("lisi", "wangwu-ldap-pw"), ("lisi", ""), ("zhaoliu", "lisi-ldap-pw"),
                     ("nobody", "lisi-ldap-pw"), ("*", "lisi-ldap-pw")):  # fmt: skip
        bad = await client.post("/api/login", json={"username": name, "password": pw})
        assert bad.status in (400, 401), (name, pw)
