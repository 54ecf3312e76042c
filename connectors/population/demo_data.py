"""Well-known synthetic citizens that every registry sandbox holds, generated or not.

The demo, the connector tests and other packages' tests reuse these constants instead of
repeating the values. They are fictitious people.
"""

from __future__ import annotations

from connectors.population.citizen import Citizen

# Active; the person the demo signs in as.
DEMO_CITIZEN = Citizen(
    pin="001090000001",
    family_name="Nguyễn",
    middle_name="Văn",
    given_name="An",
    date_of_birth="1990-01-15",
    sex="male",
    residence="Số 12 phố Hàng Bài, Phường Hàng Bài, Quận Hoàn Kiếm, Hà Nội",
    residence_province="Hà Nội",
    phone="0912345678",
    status="active",
)
DEMO_PIN = DEMO_CITIZEN.pin
DEMO_FULL_NAME = DEMO_CITIZEN.full_name
DEMO_DATE_OF_BIRTH = DEMO_CITIZEN.date_of_birth
DEMO_PHONE = DEMO_CITIZEN.phone
DEMO_PHONE_E164 = "+84912345678"

# Refused with NotAllowed(code="deceased").
DEMO_DECEASED = Citizen(
    pin="036045000002",
    family_name="Trần",
    middle_name="Văn",
    given_name="Bình",
    date_of_birth="1945-03-02",
    sex="male",
    residence="Xóm 3, Xã Hải Quang, Huyện Hải Hậu, Nam Định",
    residence_province="Nam Định",
    phone="0987654321",
    status="deceased",
)

# Refused with NotAllowed(code="id_locked").
DEMO_LOCKED = Citizen(
    pin="079185000003",
    family_name="Lê",
    middle_name="Thị",
    given_name="Hoa",
    date_of_birth="1985-07-20",
    sex="female",
    residence="Số 45 đường Nguyễn Trãi, Phường 7, Quận 5, TP Hồ Chí Minh",
    residence_province="TP Hồ Chí Minh",
    phone="0903123456",
    status="locked",
)

# Active, born in the 21st century (century digit 3), phone on record in +84 form.
DEMO_CITIZEN_2 = Citizen(
    pin="048302000004",
    family_name="Phạm",
    middle_name="Ngọc",
    given_name="Mai",
    date_of_birth="2002-11-30",
    sex="female",
    residence="Số 8 đường Bạch Đằng, Phường Hải Châu 1, Quận Hải Châu, Đà Nẵng",
    residence_province="Đà Nẵng",
    phone="+84356789012",
    status="active",
)

# Active child with no phone on record: the registry + SMS method cannot reach them.
DEMO_NO_PHONE = Citizen(
    pin="001215000005",
    family_name="Hoàng",
    middle_name="Minh",
    given_name="Khôi",
    date_of_birth="2015-06-01",
    sex="male",
    residence="Số 20 phố Huế, Phường Phố Huế, Quận Hai Bà Trưng, Hà Nội",
    residence_province="Hà Nội",
    phone=None,
    status="active",
)

DEMO_CITIZENS: tuple[Citizen, ...] = (DEMO_CITIZEN, DEMO_DECEASED, DEMO_LOCKED, DEMO_CITIZEN_2, DEMO_NO_PHONE)
DEMO_PINS = frozenset(c.pin for c in DEMO_CITIZENS)
