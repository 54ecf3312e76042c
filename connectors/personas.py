"""The sandbox's synthetic citizens and staff: one declarative list, from which the demo seeds
every sandbox (the registry's records, the test PKI's certificates, NIXA's local accounts; the
staff directory's entries are checked against connectors/ldap/staff.ldif), the sandbox page
lists them, docs/personas.md is generated (`python -m connectors.personas`) and a test signs in
as each exactly as documented.

Every person here is fictitious. The data is public on purpose: it is a sandbox.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from connectors.population.citizen import Citizen

# ---- the population registry's well-known records ---------------------------------------------

# pin, family, middle and given name, birth date, sex, residence, province, phone on record, status
AN, BINH_DECEASED, HOA_LOCKED, MAI, KHOI_NO_PHONE, THU = (Citizen(*record) for record in (
    # Active; the person the demo signs in as, by every method.
    ("001090000001", "Nguyễn", "Văn", "An", "1990-01-15", "male", "Số 12 phố Hàng Bài, Phường Hàng Bài, Quận Hoàn Kiếm, Hà Nội",
     "Hà Nội", "0912345678", "active"),
    # Refused with NotAllowed(code="deceased").
    ("036045000002", "Trần", "Văn", "Bình", "1945-03-02", "male", "Xóm 3, Xã Hải Quang, Huyện Hải Hậu, Nam Định", "Nam Định",
     "0987654321", "deceased"),
    # Refused with NotAllowed(code="id_locked"), whatever the method.
    ("079185000003", "Lê", "Thị", "Hoa", "1985-07-20", "female", "Số 45 đường Nguyễn Trãi, Phường 7, Quận 5, TP Hồ Chí Minh",
     "TP Hồ Chí Minh", "0903123456", "locked"),
    # Active, born in the 21st century (century digit 3), phone on record in +84 form.
    ("048302000004", "Phạm", "Ngọc", "Mai", "2002-11-30", "female", "Số 8 đường Bạch Đằng, Phường Hải Châu 1, Quận Hải Châu, Đà Nẵng",
     "Đà Nẵng", "+84356789012", "active"),
    # Active child with no phone on record: the registry + SMS method cannot reach them.
    ("001215000005", "Hoàng", "Minh", "Khôi", "2015-06-01", "male", "Số 20 phố Huế, Phường Phố Huế, Quận Hai Bà Trưng, Hà Nội",
     "Hà Nội", None, "active"),
    # Active; signs in with an operator SIM that is not her phone on record (registered to someone else).
    ("001178000006", "Đỗ", "Thị", "Thu", "1978-09-12", "female", "Số 3 ngõ 45 phố Văn Cao, Phường Liễu Giai, Quận Ba Đình, Hà Nội",
     "Hà Nội", "0977000111", "active"),
))
THU_SIM = "0868000123"  # the operator SIM she holds; the operator registered it to another person
THU_TOTP_SECRET = "NIXADEMOTHUTOTPSANDBOXSECRET2345"  # her authenticator app's secret (RFC 6238, base32), public on purpose

REGISTRY_RECORDS: tuple[Citizen, ...] = (AN, BINH_DECEASED, HOA_LOCKED, MAI, KHOI_NO_PHONE, THU)

# ---- the test PKI's certificates (connectors/certificate/pki.py issues them at `init`) ---------

CERTIFICATE_PASSWORD = "nixa-demo"  # every PKCS#12 file of the test PKI


@dataclass(frozen=True)
class SandboxCertificate:
    label: str  # names the file: <pki>/citizens/<label>.p12
    name: str
    pin: str
    kind: str  # good | good-ec-serialnumber | revoked | expired | wrong-usage | untrusted


CERTIFICATES: tuple[SandboxCertificate, ...] = (
    SandboxCertificate("an", AN.full_name, AN.pin, "good"),
    SandboxCertificate("binh", "Trần Thị Bình", "001190000002", "good-ec-serialnumber"),
    SandboxCertificate("cuong-revoked", "Lê Văn Cường", "001090000003", "revoked"),
    SandboxCertificate("dung-expired", "Phạm Thị Dung", "001190000004", "expired"),
    SandboxCertificate("em-wrong-usage", "Hoàng Văn Em", "001090000005", "wrong-usage"),
    SandboxCertificate("giang-untrusted", "Vũ Văn Giang", "001090000006", "untrusted"),
    SandboxCertificate("hoa-locked-id", HOA_LOCKED.full_name, HOA_LOCKED.pin, "good"),
)

# ---- NIXA's own accounts (seeded by the demo) and the staff directory (staff.ldif) -------------


@dataclass(frozen=True)
class LocalAccount:
    username: str
    password: str
    citizen: Citizen
    email: str
    totp_secret: str | None = None  # an authenticator app already set up (password + app = substantial)


LOCAL_ACCOUNTS: tuple[LocalAccount, ...] = (
    LocalAccount("citizen", "NixaDemo!2026", AN, "an.nguyen@example.vn"),
    LocalAccount("dothithu", "Thu@Demo2024", THU, "thu.do@example.vn", totp_secret=THU_TOTP_SECRET),
)


@dataclass(frozen=True)
class StaffMember:
    uid: str
    password: str
    name: str
    disabled: bool = False


STAFF: tuple[StaffMember, ...] = (
    StaffMember("nguyenvanan", "An@Demo2024", "Nguyễn Văn An"),
    StaffMember("tranthibinh", "Binh@Demo2024", "Trần Thị Bình"),
    StaffMember("levancuong", "Cuong@Demo2024", "Lê Văn Cường"),
    StaffMember("phamthidung", "Dung@Demo2024", "Phạm Thị Dung", disabled=True),
)

# ---- the personas --------------------------------------------------------------------------------

METHODS = ("local", "registry", "certificate", "operator", "staff")
LEVELS = ("low", "substantial", "high")


@dataclass(frozen=True)
class Persona:
    """Someone to sign in as, by one method, and what happens: a level, or a refusal (the reason
    NIXA records in the `login.failed` audit event)."""

    key: str
    name: str
    method: str
    about_vi: str
    about_en: str
    level: str | None = None  # the acr reached (low | substantial | high) ...
    refusal: str | None = None  # ... or the reason it is refused
    pin: str | None = None  # registry: the details typed to identify the record
    typed_name: str | None = None
    date_of_birth: str | None = None
    phone_on_record: str | None = None  # where the registry's code goes
    username: str | None = None  # local account or staff directory
    password: str | None = None
    certificate: str | None = None  # label of the test PKI's PKCS#12 file
    totp_secret: str | None = None  # local account: the authenticator app's secret, for the second step
    sim: str | None = None  # operator sign-in: the SIM confirmed on the handset
    proof: Citizen | None = None  # operator sign-in: whose ID the first-time proofing proves

    def __post_init__(self) -> None:
        if self.method not in METHODS or (self.level is None) == (self.refusal is None) or (self.level and self.level not in LEVELS):
            raise ValueError(f"persona {self.key}: a known method and exactly one of level / refusal")


def _registry(key: str, citizen: Citizen, about_vi: str, about_en: str, *, typed_name: str | None = None, pin: str | None = None,
              **outcome: str) -> Persona:
    return Persona(key, citizen.full_name, "registry", about_vi, about_en, pin=pin or citizen.pin, typed_name=typed_name or citizen.full_name,
                   date_of_birth=citizen.date_of_birth, phone_on_record=citizen.phone, **outcome)


def _certificate(key: str, label: str, about_vi: str, about_en: str, **outcome: str) -> Persona:
    cert = next(c for c in CERTIFICATES if c.label == label)
    return Persona(key, cert.name, "certificate", about_vi, about_en, pin=cert.pin, certificate=label, **outcome)


def _staff(key: str, uid: str, about_vi: str, about_en: str, **outcome: str) -> Persona:
    member = next(s for s in STAFF if s.uid == uid)
    return Persona(key, member.name, "staff", about_vi, about_en, username=uid, password=member.password, **outcome)


_AN_ACCOUNT = LOCAL_ACCOUNTS[0]
PERSONAS: tuple[Persona, ...] = (
    Persona("an-account", AN.full_name, "local", "Có tài khoản NIXA (tên đăng nhập và mật khẩu).",
            "Has a NIXA account (username and password).", level="low", username=_AN_ACCOUNT.username, password=_AN_ACCOUNT.password),
    _registry("an-registry", AN, "Công dân có số điện thoại trong CSDL dân cư.", "A citizen with a phone on record in the registry.",
              level="substantial"),
    _certificate("an-certificate", "an", "Có chứng thư số hợp lệ mang số định danh.", "Holds a valid certificate carrying the ID.",
                 level="high"),
    Persona("an-operator", AN.full_name, "operator", "Đăng nhập qua nhà mạng bằng SIM chính chủ (số trong CSDL dân cư).",
            "Operator sign-in with his own SIM (the registry's phone on record).", level="substantial", sim=AN.phone, proof=AN),
    _staff("an-staff", "nguyenvanan", "Cán bộ Bộ Tài chính (nhóm can-bo-thue), danh tính G2E riêng.",
           "Ministry of Finance staff (group can-bo-thue), a separate G2E identity.", level="low"),
    _registry("mai-registry", MAI, "Sinh năm 2002; CSDL ghi số điện thoại dạng +84.", "Born 2002; the registry holds her phone in +84 form.",
              level="substantial"),
    Persona("thu-password-totp", THU.full_name, "local", "Có tài khoản NIXA và ứng dụng xác thực (TOTP).",
            "Has a NIXA account and an authenticator app (TOTP).", level="substantial", username=LOCAL_ACCOUNTS[1].username,
            password=LOCAL_ACCOUNTS[1].password, totp_secret=THU_TOTP_SECRET),
    Persona("mai-no-account", MAI.full_name, "local", "Không có tài khoản NIXA: thử đăng nhập bằng tài khoản NIXA.",
            "Has no NIXA account, tries the NIXA account form.", refusal="invalid_credentials", username="phamngocmai",
            password="Mai@Demo2024"),
    _registry("binh-deceased", BINH_DECEASED, "CSDL dân cư ghi đã mất.", "The registry records him as deceased.", refusal="deceased"),
    _registry("hoa-locked", HOA_LOCKED, "Số định danh bị khoá trong CSDL dân cư.", "Her ID is locked in the registry.",
              refusal="id_locked"),
    _certificate("hoa-locked-certificate", "hoa-locked-id", "Chứng thư số hợp lệ, nhưng số định danh bị khoá.",
                 "A valid certificate, but her ID is locked: the registry is the authority whatever the method.",
                 refusal="id_locked"),
    _registry("khoi-minor-no-phone", KHOI_NO_PHONE, "Trẻ em (sinh 2015), CSDL không có số điện thoại.",
              "A child (born 2015) with no phone on record.", refusal="no_phone_on_record"),
    _certificate("binh-certificate", "binh", "Chứng thư số khoá EC, số định danh trong serialNumber.",
                 "An EC-key certificate with the ID in serialNumber.", level="high"),
    _certificate("cuong-revoked", "cuong-revoked", "Chứng thư số đã bị thu hồi (OCSP/CRL).", "A revoked certificate (OCSP/CRL).",
                 refusal="cert_revoked"),
    _certificate("dung-expired", "dung-expired", "Chứng thư số đã hết hạn.", "An expired certificate.", refusal="cert_expired"),
    _certificate("em-wrong-usage", "em-wrong-usage", "Chứng thư số chỉ để mã hoá, không để ký.",
                 "A certificate for encipherment only, not for signing.", refusal="cert_wrong_usage"),
    _certificate("giang-untrusted", "giang-untrusted", "Chứng thư số của một CA không được tin cậy.",
                 "A certificate from a CA NIXA does not trust.", refusal="cert_untrusted"),
    _staff("binh-staff", "tranthibinh", "Cán bộ, quản trị (nhóm quan-tri).", "Staff, an administrator (group quan-tri).", level="low"),
    _staff("cuong-staff", "levancuong", "Cán bộ kế toán (nhóm ke-toan).", "Staff, accounting (group ke-toan).", level="low"),
    _staff("dung-staff-disabled", "phamthidung", "Tài khoản cán bộ đã bị vô hiệu hoá trong thư mục.",
           "A staff account disabled in the directory.", refusal="account_disabled"),
    Persona("thu-foreign-sim", THU.full_name, "operator",
            "Đăng nhập qua nhà mạng bằng SIM đứng tên người khác: SIM không chứng minh được số định danh của chị, nên mã chứng minh "
            "gửi tới số trong CSDL dân cư; ai chỉ có SIM thì không thể hoàn tất.",
            "Operator sign-in with a SIM registered to someone else: the SIM does not prove her ID, so the proving code goes to "
            "her phone on record; someone holding only the SIM cannot finish.", level="substantial", sim=THU_SIM, proof=THU),
    _registry("unknown-id", Citizen("001099999999", "Nguyễn", "Văn", "Vô", "1999-09-09", "male", "", "", None, "active"),
              "Số định danh không có trong CSDL dân cư.", "An ID number the registry does not know.", refusal="invalid_credentials"),
    _registry("an-no-diacritics", AN, "Gõ họ tên không dấu: không khớp bản ghi.", "Types his name without diacritics: no record matches.",
              typed_name="Nguyen Van An", refusal="invalid_credentials"),
)

# ---- what each outcome means, for the page and the docs ------------------------------------------

LEVEL_TEXT = {"low": ("Thấp", "Low"), "substantial": ("Đáng kể", "Substantial"), "high": ("Cao", "High")}
REFUSAL_TEXT = {
    "invalid_credentials": ("Bị từ chối: thông tin không đúng (không nói rõ là sai gì).", "Refused: wrong details (never says which)."),
    "deceased": ("Bị từ chối: người đã mất.", "Refused: the person is deceased."),
    "id_locked": ("Bị từ chối: số định danh bị khoá.", "Refused: the ID is locked."),
    "no_phone_on_record": ("Bị từ chối: CSDL không có số điện thoại để gửi mã.", "Refused: no phone on record to send the code to."),
    "cert_revoked": ("Bị từ chối: chứng thư số đã bị thu hồi.", "Refused: the certificate is revoked."),
    "cert_expired": ("Bị từ chối: chứng thư số đã hết hạn.", "Refused: the certificate has expired."),
    "cert_wrong_usage": ("Bị từ chối: chứng thư số không dùng để ký.", "Refused: the certificate is not for signing."),
    "cert_untrusted": ("Bị từ chối: CA phát hành không được tin cậy.", "Refused: the issuing CA is not trusted."),
    "account_disabled": ("Bị từ chối: tài khoản đã bị vô hiệu hoá.", "Refused: the account is disabled."),
}
SMS_OUTBOX = "http://127.0.0.1:8102/outbox"  # the demo's operator SMS sandbox (idp/demo/run.py PORTS)
ISSUER = "http://127.0.0.1:8000"


def outcome(persona: Persona, lang: str) -> str:
    i = 0 if lang == "vi" else 1
    if persona.level:
        return ("Đăng nhập ở mức " if i == 0 else "Signed in at level ") + LEVEL_TEXT[persona.level][i]
    return REFUSAL_TEXT[persona.refusal][i]  # type: ignore[index]


def steps(persona: Persona, lang: str) -> list[str]:
    """How to sign in as `persona` in the demo, step by step (Markdown code spans for values)."""
    vi = lang == "vi"
    p = persona
    if p.method == "local":
        out = [("Chọn *Tài khoản NIXA*; tên đăng nhập " if vi else "Choose *NIXA account*; username ") + f"`{p.username}`, "
               + ("mật khẩu " if vi else "password ") + f"`{p.password}`."]
        if p.totp_secret:
            out.append((f"Rồi nhập mã của ứng dụng xác thực: thêm khoá bí mật `{p.totp_secret}` vào một ứng dụng TOTP bất kỳ, "
                        f"hoặc chạy `oathtool --totp -b {p.totp_secret}`." if vi else
                        f"Then type the authenticator app's code: add the secret `{p.totp_secret}` to any TOTP app, "
                        f"or run `oathtool --totp -b {p.totp_secret}`."))
        return out
    if p.method == "staff":
        return [("Chọn *Cán bộ, công chức đăng nhập bằng tài khoản cơ quan*; tên đăng nhập " if vi
                 else "Choose *Agency staff: sign in with your agency account*; username ") + f"`{p.username}`, "
                + ("mật khẩu " if vi else "password ") + f"`{p.password}`."]
    if p.method == "registry":
        out = [("Chọn *Cơ sở dữ liệu quốc gia về dân cư*; số định danh " if vi else "Choose *National population registry*; ID ")
               + f"`{p.pin}`, " + ("họ tên " if vi else "name ") + f"`{p.typed_name}`, " + ("ngày sinh " if vi else "born ")
               + f"`{p.date_of_birth}`."]
        if p.level:
            out.append((f"Mã gửi tới số trong CSDL `{p.phone_on_record}`: xem hộp thư SMS của nhà mạng thử nghiệm, {SMS_OUTBOX}, rồi nhập mã."
                        if vi else f"The code goes to the phone on record `{p.phone_on_record}`: read it in the sandbox operator's "
                        f"SMS outbox, {SMS_OUTBOX}, and type it."))
        return out
    if p.method == "certificate":
        sign = (f"`nixa sign --p12 var/pki/citizens/{p.certificate}.p12 --password {CERTIFICATE_PASSWORD} --origin {ISSUER} "
                "--challenge-file statement.txt`")
        return [(f"Chọn *Chứng thư số* (chứng thư mang số định danh `{p.pin}`); lưu nội dung trang hiển thị thành `statement.txt`."
                 if vi else f"Choose *Digital-signature certificate* (the certificate carries the ID `{p.pin}`); save the statement "
                 "the page shows as `statement.txt`."),
                (f"Chạy {sign}, dán kết quả JSON." if vi else f"Run {sign} and paste the JSON it prints.")]
    assert p.method == "operator" and p.proof is not None
    proof = p.proof
    return [("Chọn *Đăng nhập qua nhà mạng*; số điện thoại " if vi else "Choose *Mobile operator sign-in*; phone ") + f"`{p.sim}`, "
            + ("xác nhận trên trang của nhà mạng." if vi else "confirm on the operator's page."),
            (f"Lần đầu, NIXA yêu cầu chứng minh số định danh một lần: CSDL dân cư với `{proof.pin}`, `{proof.full_name}`, "
             f"`{proof.date_of_birth}`; mã gửi tới số trong CSDL `{proof.phone}` (không phải SIM vừa dùng), xem {SMS_OUTBOX}."
             if vi else f"The first time, NIXA asks to prove the ID once: the registry with `{proof.pin}`, `{proof.full_name}`, "
             f"`{proof.date_of_birth}`; the code goes to the phone on record `{proof.phone}` (not the SIM just used), see {SMS_OUTBOX}."),
            ("Sau đó SIM được liên kết: lần sau không hỏi lại." if vi else "The SIM is then linked: no proofing the next time.")]


def markdown() -> str:
    """docs/personas.md, generated from PERSONAS (tests/connectors/test_personas.py keeps it in step)."""
    lines = [
        "# Công dân giả lập của sandbox / The sandbox's synthetic citizens",
        "",
        "<!-- Generated by `python -m connectors.personas > docs/personas.md` from connectors/personas.py; do not edit. -->",
        "",
        "Every person here is fictitious. `make demo` seeds them into every sandbox from this one list (the "
        "population registry's records, the test PKI's certificates under `var/pki`, NIXA's own accounts; the staff "
        "directory is `connectors/ldap/staff.ldif`, checked against the list), and lists them at "
        "http://127.0.0.1:8000/sandbox/personas. Codes sent by SMS show in the operator sandbox's outbox, "
        f"{SMS_OUTBOX}. "
        "The registry sandbox also holds thousands of generated citizens: `nixa registry generate` prints how to sign "
        "in as the first of them. A test signs in as each persona exactly as written here "
        "(`tests/login/test_personas.py`).",
        "",
        "| persona | method | outcome |",
        "| --- | --- | --- |",
    ]
    for p in PERSONAS:
        lines.append(f"| [{p.name}](#{p.key}) (`{p.key}`) | {p.method} | {outcome(p, 'en')} |")
    for p in PERSONAS:
        lines += ["", f"## {p.name} — `{p.key}`", "", f'<a id="{p.key}"></a>', "",
                  f"{p.about_vi} *{p.about_en}*", "", f"**{outcome(p, 'vi')}** / {outcome(p, 'en')}"]
        if p.refusal:
            lines.append(f"(audit: `login.failed`, reason `{p.refusal}`)")
        lines += ["", "Cách đăng nhập:", ""] + [f"{i}. {s}" for i, s in enumerate(steps(p, "vi"), 1)]
        lines += ["", "How to sign in:", ""] + [f"{i}. {s}" for i, s in enumerate(steps(p, "en"), 1)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
