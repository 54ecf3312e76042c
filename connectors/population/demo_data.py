"""Well-known synthetic citizens that every registry sandbox holds, generated or not: the
registry's records of the sandbox personas (connectors/personas.py, where they are declared).

The demo, the connector tests and other packages' tests reuse these constants instead of
repeating the values. They are fictitious people.
"""

from __future__ import annotations

from connectors.personas import AN, BINH_DECEASED, HOA_LOCKED, KHOI_NO_PHONE, MAI, REGISTRY_RECORDS
from connectors.population.citizen import Citizen

DEMO_CITIZEN: Citizen = AN  # active; the person the demo signs in as
DEMO_PIN = DEMO_CITIZEN.pin
DEMO_FULL_NAME = DEMO_CITIZEN.full_name
DEMO_DATE_OF_BIRTH = DEMO_CITIZEN.date_of_birth
DEMO_PHONE = DEMO_CITIZEN.phone
DEMO_PHONE_E164 = "+84912345678"

DEMO_DECEASED = BINH_DECEASED  # refused with NotAllowed(code="deceased")
DEMO_LOCKED = HOA_LOCKED  # refused with NotAllowed(code="id_locked")
DEMO_CITIZEN_2 = MAI  # active, born in the 21st century (century digit 3), phone on record in +84 form
DEMO_NO_PHONE = KHOI_NO_PHONE  # active child with no phone on record

DEMO_CITIZENS: tuple[Citizen, ...] = REGISTRY_RECORDS
DEMO_PINS = frozenset(c.pin for c in DEMO_CITIZENS)
