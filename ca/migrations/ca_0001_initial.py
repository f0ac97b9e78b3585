"""CA tables: authorities, certificates (serials reserved before signing), CRLs.

Revision ID: ca_0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "ca_0001"
down_revision = None
branch_labels = ("ca",)
depends_on = "core_0001"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ca_authorities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("ca_authorities.id"), nullable=True),
        sa.Column("key_id", sa.String(200), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("certificate_id", sa.Integer, nullable=True),
        sa.Column("ocsp_key_id", sa.String(200), nullable=True),
        sa.Column("ocsp_certificate_der", sa.LargeBinary, nullable=True),
        sa.Column("ocsp_certificate_id", sa.Integer, nullable=True),
        sa.Column("crl_number", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("crl_dirty_since", TZ, nullable=True),
        sa.Column("revocation_version", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "ca_certificates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ca_id", sa.Integer, sa.ForeignKey("ca_authorities.id"), nullable=False),
        sa.Column("serial", sa.String(42), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("profile", sa.String(100), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("key_mode", sa.String(20), nullable=False, server_default="csr"),
        sa.Column("owner", sa.String(200), nullable=True, index=True),
        sa.Column("key_id", sa.String(200), nullable=True),
        sa.Column("not_before", TZ, nullable=False),
        sa.Column("not_after", TZ, nullable=False, index=True),
        sa.Column("der", sa.LargeBinary, nullable=True),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=True, unique=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("revocation_reason", sa.String(40), nullable=True),
        sa.Column("invalidity_date", TZ, nullable=True),
        sa.Column("renewal_of", sa.Integer, sa.ForeignKey("ca_certificates.id"), nullable=True),
        sa.UniqueConstraint("ca_id", "serial", name="uq_ca_certificates_ca_serial"),
    )
    op.create_index("ix_ca_certificates_revoked", "ca_certificates", ["ca_id", "status"])
    op.create_index("ix_ca_certificates_serial", "ca_certificates", ["serial"])
    op.create_index("ix_ca_certificates_renewal_of", "ca_certificates", ["renewal_of"])
    op.create_table(
        "ca_crls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ca_id", sa.Integer, sa.ForeignKey("ca_authorities.id"), nullable=False),
        sa.Column("crl_number", sa.BigInteger, nullable=False),
        sa.Column("this_update", TZ, nullable=False),
        sa.Column("next_update", TZ, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("ca_id", "crl_number", name="uq_ca_crls_number"),
    )


def downgrade() -> None:
    op.drop_table("ca_crls")
    op.drop_table("ca_certificates")
    op.drop_table("ca_authorities")
